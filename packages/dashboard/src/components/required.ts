import { useState } from 'react'

/**
 * A text that must hold more than spaces. Its message shows once a send found
 * it blank and goes as soon as something is typed; `check` is that send.
 */
export function useRequired(message: string) {
  const [value, set] = useState('')
  const [tried, setTried] = useState(false)
  return {
    value,
    set,
    error: tried && !value.trim() ? message : undefined,
    check: () => {
      setTried(true)
      return value.trim() !== ''
    },
  }
}
