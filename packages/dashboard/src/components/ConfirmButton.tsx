import { useEffect, useId, useRef, useState, type ReactNode } from 'react'
import { Button, type Variant } from './ui'

/**
 * A button for what cannot be taken back. The first press asks, in place
 * ("Disable key? [Yes, disable] [Keep]"), with the focus on the answer that
 * acts; Escape or Keep puts the button back, focused. The button keeps
 * `testId`; the answers are `${testId}-confirm` and `${testId}-keep`, and
 * carry the same `data` attributes.
 */
export function ConfirmButton({ children, question, yes, onConfirm, testId, data, disabled = false, variant = 'danger', more }: {
  children: ReactNode
  question: string
  yes: string
  onConfirm: () => void
  testId: string
  data?: Record<`data-${string}`, string>
  disabled?: boolean
  variant?: Variant
  /** A choice that goes with the answer (a rotated key's overlap), shown with the question. */
  more?: ReactNode
}) {
  const [asking, setAsking] = useState(false)
  const first = useRef<HTMLButtonElement>(null)
  const confirm = useRef<HTMLButtonElement>(null)
  const refocus = useRef(false)
  const questionId = useId()
  useEffect(() => {
    if (asking) confirm.current?.focus()
    else if (refocus.current) first.current?.focus()
    refocus.current = false
  }, [asking])
  const close = () => {
    refocus.current = true
    setAsking(false)
  }
  if (!asking) {
    return (
      <Button ref={first} variant={variant} disabled={disabled} onClick={() => setAsking(true)} data-testid={testId} {...data}>
        {children}
      </Button>
    )
  }
  return (
    <span
      role="group"
      aria-labelledby={questionId}
      className="inline-flex flex-wrap items-center gap-1"
      onKeyDown={(e) => {
        if (e.key !== 'Escape') return
        e.stopPropagation()
        close()
      }}
    >
      <span id={questionId} className="text-sm font-medium text-gray-900">
        {question}
      </span>
      {more}
      <Button
        ref={confirm}
        variant={variant}
        disabled={disabled}
        onClick={() => {
          close()
          onConfirm()
        }}
        data-testid={`${testId}-confirm`}
        {...data}
      >
        {yes}
      </Button>
      <Button onClick={close} data-testid={`${testId}-keep`} {...data}>
        Keep
      </Button>
    </span>
  )
}
