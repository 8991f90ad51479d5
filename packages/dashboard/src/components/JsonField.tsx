import type { useJsonInput } from './json-input'
import { Field, TextArea } from './ui'

/** A JSON textarea with its parse error under it (`{testId}-error`). */
export function JsonField({ label, input, rows = 6, testId, hint }: { label: string; input: ReturnType<typeof useJsonInput>; rows?: number; testId: string; hint?: string }) {
  return (
    <>
      <Field label={label} {...(hint ? { hint } : {})}>
        <TextArea rows={rows} value={input.text} onChange={(e) => input.setText(e.target.value)} aria-invalid={!!input.error} data-testid={testId} />
      </Field>
      {input.error && (
        <p role="alert" className="text-sm text-red-800" data-testid={`${testId}-error`}>
          {input.error}
        </p>
      )}
    </>
  )
}
