import type { ReactNode } from 'react'
import { ErrorAlert } from './ErrorAlert'
import { Loading } from './ui'

/** A query's error (kept on screen), a loading line, then what it read. */
export function Loaded({ query, children }: { query: { error: unknown; isPending: boolean }; children: ReactNode }) {
  return (
    <>
      <ErrorAlert error={query.error} />
      {query.isPending ? <Loading /> : children}
    </>
  )
}
