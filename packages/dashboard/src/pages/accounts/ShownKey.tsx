import { useState } from 'react'
import { Button } from '../../components/ui'

/** A new API key, shown this once: OnePipe keeps only its hash. */
export function ShownKey({ value, name, onDone }: { value: string; name: string; onDone: () => void }) {
  const [copied, setCopied] = useState(false)
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value)
      setCopied(true)
    } catch {
      // Without clipboard access (plain HTTP on another host) the key stays selectable below.
      setCopied(false)
    }
  }
  return (
    <div className="my-3 rounded border-2 border-amber-600 bg-amber-50 p-3 text-sm text-gray-900" data-testid="key-shown" role="region" aria-label="New API key">
      <p className="mb-2 font-semibold text-amber-900" data-testid="key-warning">
        Copy the key “{name}” now: it is shown only this once and cannot be read again.
      </p>
      <div className="flex flex-wrap items-center gap-2">
        <input
          readOnly
          value={value}
          aria-label="API key"
          className="min-w-0 flex-1 rounded border border-gray-400 bg-white px-2 py-1 font-mono text-xs"
          onFocus={(e) => e.target.select()}
          data-testid="key-secret"
        />
        <Button onClick={() => void copy()} data-testid="key-copy">
          {copied ? 'Copied' : 'Copy'}
        </Button>
        <Button onClick={onDone} data-testid="key-done">
          I saved it
        </Button>
      </div>
    </div>
  )
}
