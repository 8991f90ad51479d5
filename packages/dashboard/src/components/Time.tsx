const fmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' })

/** A time as the reader's locale writes it, the exact ISO string on hover. */
export function Time({ at }: { at: string | null | undefined }) {
  if (!at) return <span>—</span>
  const d = new Date(at)
  if (Number.isNaN(d.getTime())) return <span>{at}</span>
  return (
    <time dateTime={at} title={at} className="whitespace-nowrap">
      {fmt.format(d)}
    </time>
  )
}

export const ago = (at: string | null | undefined): string => {
  if (!at) return '—'
  const s = Math.round((Date.now() - new Date(at).getTime()) / 1000)
  if (!Number.isFinite(s)) return at
  if (s < 60) return `${Math.max(0, s)} s ago`
  if (s < 3600) return `${Math.round(s / 60)} min ago`
  return `${Math.round(s / 3600)} h ago`
}
