import { OnePipeError, type Queryable } from '@onepipe/core'

/** The transaction handle a transactional handler gets, and what the channel learns from it. */
export interface GuardedTransaction {
  tx: Queryable
  /** Refuses every later statement. */
  close(this: void): void
  /** Whether a statement failed: the transaction is then aborted, and the driver will not commit it. */
  failed(this: void): boolean
}

/**
 * The transaction handle a transactional handler gets. It refuses statements
 * once the attempt is over (it timed out, failed or returned): with a pool,
 * a statement sent through a transaction that has ended would run on a
 * connection already serving someone else, outside any transaction.
 */
export function guardTransaction(tx: Queryable, subject: string): GuardedTransaction {
  let open = true
  let failed = false
  const refused = () =>
    new OnePipeError('CHANNEL_TX_CLOSED', `${subject}: a statement was sent after the handler's attempt ended (timed out, failed or returned); it did not run`, {
      status: 500,
      retryable: false,
    })
  const watch = <T>(p: Promise<T>) =>
    p.catch((e: unknown) => {
      failed = true
      throw e
    })
  return {
    tx: {
      query: <T>(text: string, params?: readonly unknown[]) => (open ? watch(tx.query<T>(text, params)) : Promise.reject(refused())),
      execute: (text: string, params?: readonly unknown[]) => (open ? watch(tx.execute(text, params)) : Promise.reject(refused())),
    },
    close: () => {
      open = false
    },
    failed: () => failed,
  }
}
