const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'short' })
const timeFmt = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' })

/**
 * A time as the reader's locale writes it, the exact ISO string on hover. The
 * date and the time may sit on two lines, so a narrow column wraps instead of
 * pushing its table wider than the screen.
 */
export function Time({ at }: { at: string | null | undefined }) {
  if (!at) return <span>—</span>
  const d = new Date(at)
  if (Number.isNaN(d.getTime())) return <span>{at}</span>
  return (
    <time dateTime={at} title={at}>
      <span className="whitespace-nowrap">{dateFmt.format(d)}</span> <span className="whitespace-nowrap">{timeFmt.format(d)}</span>
    </time>
  )
}

/** An epoch in milliseconds (a flow event's timestamp, a sleep's wake time) as a Time. */
export const EpochTime = ({ ms }: { ms: number }) => <Time at={Number.isFinite(ms) ? new Date(ms).toISOString() : undefined} />

// dateStyle and timeStyle refuse timeZoneName beside them: the parts are named one by one.
const zonedParts: Intl.DateTimeFormatOptions = { year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: '2-digit', timeZoneName: 'short' }
const zonedFmts = new Map<string, Intl.DateTimeFormat>()
const zoned = (timeZone: string | undefined): Intl.DateTimeFormat => {
  const key = timeZone ?? ''
  let f = zonedFmts.get(key)
  if (!f) {
    try {
      f = new Intl.DateTimeFormat(undefined, { ...zonedParts, ...(timeZone ? { timeZone } : {}) })
    } catch {
      // A zone this browser does not know: the reader's own, still named.
      f = new Intl.DateTimeFormat(undefined, zonedParts)
    }
    zonedFmts.set(key, f)
  }
  return f
}

/** A time in a given IANA zone (the reader's without one), its zone written after it. */
export function ZonedTime({ at, timeZone }: { at: string; timeZone: string | undefined }) {
  const d = new Date(at)
  if (Number.isNaN(d.getTime())) return <span>{at}</span>
  return (
    <time dateTime={at} title={at} className="whitespace-nowrap">
      {zoned(timeZone).format(d)}
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
