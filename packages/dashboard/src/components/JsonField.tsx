import type { useJsonInput } from './json-input'
import { Field, TextArea } from './ui'

/** A JSON textarea with its parse error under it (`{testId}-error`), which describes the textarea. */
export function JsonField({ label, input, rows = 6, testId, hint }: { label: string; input: ReturnType<typeof useJsonInput>; rows?: number; testId: string; hint?: string }) {
  return (
    <Field label={label} error={input.error} errorTestId={`${testId}-error`} {...(hint ? { hint } : {})}>
      <TextArea rows={rows} value={input.text} onChange={(e) => input.setText(e.target.value)} data-testid={testId} />
    </Field>
  )
}
