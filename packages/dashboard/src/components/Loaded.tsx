import type { ReactNode } from 'react'
import { ErrorAlert } from './ErrorAlert'
import { Button, Loading } from './ui'

/**
 * A query's error (kept on screen), a loading line, then what it read. A query
 * that failed before reading anything shows only its error: an empty table
 * under it would claim there is nothing.
 */
export function Loaded({ query, children }: { query: { error: unknown; isPending: boolean; data?: unknown }; children: ReactNode }) {
  return (
    <>
      <ErrorAlert error={query.error} />
      {query.isPending ? <Loading /> : query.data === undefined ? null : children}
    </>
  )
}

/** A paged list's next page, offered while there is one. */
export function LoadMore({ query, testId }: { query: { hasNextPage: boolean; isFetchingNextPage: boolean; fetchNextPage: () => Promise<unknown> }; testId: string }) {
  if (!query.hasNextPage) return null
  return (
    <div className="mt-3">
      <Button onClick={() => void query.fetchNextPage()} disabled={query.isFetchingNextPage} data-testid={testId}>
        {query.isFetchingNextPage ? 'Loading…' : 'Load more'}
      </Button>
    </div>
  )
}
