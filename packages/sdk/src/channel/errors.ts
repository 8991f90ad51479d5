import { ConflictError } from '@onepipe/core'

/**
 * The same idempotency key was sent with different input: the stored call
 * is for other data, so neither its result nor a new run would be right.
 *
 * @example
 * ```ts
 * try { await pay.call(input) } catch (e) { if (e instanceof IdempotencyConflictError) … }
 * ```
 */
export class IdempotencyConflictError extends ConflictError {
  constructor(channel: string, key: string) {
    super('IDEMPOTENCY_CONFLICT', `Channel "${channel}": idempotency key "${key}" was already used with different input; use a new key for new input`, { channel, key })
  }
}
