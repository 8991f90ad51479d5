import { useState } from 'react'

export type Parsed = { ok: true; value: unknown } | { ok: false; error: string }

export function parseJson(text: string, o: { object?: boolean; emptyAs?: unknown } = {}): Parsed {
  if (text.trim() === '') return o.emptyAs !== undefined ? { ok: true, value: o.emptyAs } : { ok: false, error: 'Enter a JSON value' }
  try {
    const value: unknown = JSON.parse(text)
    if (o.object && (typeof value !== 'object' || value === null || Array.isArray(value))) return { ok: false, error: 'Must be a JSON object, like {"customer": "alice"}' }
    return { ok: true, value }
  } catch (e) {
    return { ok: false, error: `Not valid JSON: ${e instanceof Error ? e.message : String(e)}` }
  }
}

/** A textarea's JSON text and whether it parses; the error shows once the user tried to send it. */
export function useJsonInput(initial: string, o: { object?: boolean; emptyAs?: unknown } = {}) {
  const [text, setText] = useState(initial)
  const [touched, setTouched] = useState(false)
  const parsed = parseJson(text, o)
  return {
    text,
    setText,
    parsed,
    error: touched && !parsed.ok ? parsed.error : undefined,
    /** Marks the input as sent; true when it parses. */
    check: () => {
      setTouched(true)
      return parsed.ok
    },
  }
}
