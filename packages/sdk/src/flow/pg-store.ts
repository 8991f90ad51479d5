import { TransportError, type Database, type Queryable } from '@onepipe/core'
import { Waker } from './pull.js'
import type { FlowEvent, FlowStore } from './types.js'

/** NOTIFY channel (schema-scoped by the Database) that carries flow names with new events. */
const CHANNEL = 'onepipe_flows'
/** The most events one append statement carries. */
const MAX_BATCH = 1000

interface Outgoing {
  id: string
  data: unknown
  traceparent: string | null
}

interface Pending extends Outgoing {
  resolve: (e: FlowEvent) => void
  reject: (e: unknown) => void
}

interface Row {
  id: string
  offset: number
  timestamp: number
  data?: unknown
  traceparent?: string | null
}

/**
 * One LISTEN per Database and process, shared by every flow on it: a NOTIFY
 * names the flow, and only that flow's readers wake. When the listening
 * connection was lost and listens again, every reader of every flow wakes:
 * the NOTIFYs of appends made in the gap never arrive.
 */
class Notifier {
  #handlers = new Map<string, Set<() => void>>()
  #stop: Promise<() => Promise<void>> | undefined
  constructor(private readonly db: Database) {}

  async add(flow: string, fn: () => void): Promise<void> {
    let set = this.#handlers.get(flow)
    if (!set) this.#handlers.set(flow, (set = new Set()))
    set.add(fn)
    this.#stop ??= this.db.listen(
      CHANNEL,
      (payload) => {
        for (const h of this.#handlers.get(payload) ?? []) h()
      },
      { onReconnect: () => this.#wakeAll() },
    )
    try {
      await this.#stop
    } catch (e) {
      this.#stop = undefined
      set.delete(fn)
      throw e
    }
  }

  #wakeAll(): void {
    for (const set of [...this.#handlers.values()]) for (const h of [...set]) h()
  }

  async remove(flow: string, fn: () => void): Promise<void> {
    const set = this.#handlers.get(flow)
    set?.delete(fn)
    if (set?.size === 0) this.#handlers.delete(flow)
    if (this.#handlers.size > 0 || !this.#stop) return
    const stop = this.#stop
    this.#stop = undefined
    await (await stop)()
  }
}

const notifiers = new WeakMap<Database, Notifier>()
function notifierOf(db: Database): Notifier {
  let n = notifiers.get(db)
  if (!n) notifiers.set(db, (n = new Notifier(db)))
  return n
}

/**
 * Appends every pending event in one statement: bump the flow's counter row
 * (the row lock orders appenders of one flow across instances), insert the
 * events with the offsets that follow, and NOTIFY, all in one implicit
 * transaction, or in the caller's when `q` is one (appendIn).
 *
 * Inside a caller's transaction the counter row stays locked until that
 * transaction ends, so the next appender of the flow waits for its commit:
 * offsets become visible in commit order, and a rolled-back append hands
 * its offsets back (no gap). A reader that pages by offset (subscribe, and
 * the cursors of `$.on` handlers over Things' events) relies on this: once
 * it has read offset n, no offset below n can still appear. The NOTIFY is
 * delivered at that commit, never for a rolled-back append.
 */
async function insertBatch(q: Queryable, db: Database, flow: string, batch: readonly Outgoing[]): Promise<Row[]> {
  const payload = JSON.stringify(batch.map((p) => ({ i: p.id, d: p.data, t: p.traceparent })))
  return q.query<Row>(
    `WITH c AS (
       INSERT INTO _onepipe_flows AS f (flow_name, last_offset) VALUES ($1, $3::bigint)
       ON CONFLICT (flow_name) DO UPDATE SET last_offset = f.last_offset + $3::bigint
       RETURNING f.last_offset - $3::bigint AS base
     ), ins AS (
       INSERT INTO _onepipe_flow_events (id, flow_name, data, timestamp, offset_seq, traceparent)
       SELECT x.value->>'i', $1, x.value->'d', (extract(epoch FROM now()) * 1000)::bigint, c.base + x.ord, x.value->>'t'
       FROM c, jsonb_array_elements($2::text::jsonb) WITH ORDINALITY AS x(value, ord)
       RETURNING id, offset_seq, timestamp
     )
     SELECT id, offset_seq AS "offset", timestamp, (SELECT pg_notify($4, $1)) IS NULL AS n FROM ins ORDER BY offset_seq`,
    [flow, payload, batch.length, db.channel(CHANNEL)],
  )
}

async function selectAfter(q: Queryable, flow: string, after: number, limit: number): Promise<Row[]> {
  return q.query<Row>(
    `SELECT id, offset_seq AS "offset", timestamp, data, traceparent FROM _onepipe_flow_events
     WHERE flow_name = $1 AND offset_seq > $2 ORDER BY offset_seq LIMIT $3`,
    [flow, after, limit],
  )
}

async function selectTail(q: Queryable, flow: string, n: number): Promise<Row[]> {
  const rows = await q.query<Row>(
    `SELECT id, offset_seq AS "offset", timestamp, data, traceparent FROM _onepipe_flow_events
     WHERE flow_name = $1 ORDER BY offset_seq DESC LIMIT $2`,
    [flow, n],
  )
  return rows.reverse()
}

async function selectHead(q: Queryable, flow: string): Promise<number> {
  const [r] = await q.query<{ last_offset: number }>('SELECT last_offset FROM _onepipe_flows WHERE flow_name = $1', [flow])
  return r?.last_offset ?? 0
}

async function deleteOlderThan(q: Queryable, flow: string, maxAgeMs: number): Promise<number> {
  return q.execute('DELETE FROM _onepipe_flow_events WHERE flow_name = $1 AND timestamp < (extract(epoch FROM now()) * 1000)::bigint - $2', [flow, maxAgeMs])
}

async function deleteBeyondCount(q: Queryable, flow: string, maxEvents: number): Promise<number> {
  return q.execute(
    `DELETE FROM _onepipe_flow_events
     WHERE flow_name = $1 AND offset_seq <= (SELECT last_offset FROM _onepipe_flows WHERE flow_name = $1) - $2`,
    [flow, maxEvents],
  )
}

/**
 * Changes of the caller's own table and their events, in one statement (an
 * outbox without a transaction round trip): `gate` is a data-modifying
 * query (its parameters numbered from $4) returning one row per change
 * made, `event` a SQL expression over `gate` giving each event's data, and
 * `order` one over `gate` numbering the events (the order they were asked
 * in). The counter bump, the events and the NOTIFY happen only for the rows
 * the gate returns; the statement is its own transaction, so no change
 * commits without its event, nor an event without its change.
 */
export interface Gate {
  sql: string
  params: readonly unknown[]
  event: string
  order: string
}

async function insertAfterGate(q: Queryable, db: Database, flow: string, traceparent: string | null, gate: Gate): Promise<Record<string, unknown>[]> {
  return q.query<Record<string, unknown>>(
    `WITH gate AS (${gate.sql}), n AS (SELECT count(*)::bigint AS k FROM gate), c AS (
       INSERT INTO _onepipe_flows AS f (flow_name, last_offset) SELECT $1, n.k FROM n WHERE n.k > 0
       ON CONFLICT (flow_name) DO UPDATE SET last_offset = f.last_offset + excluded.last_offset
       RETURNING f.last_offset - (SELECT k FROM n) AS base
     ), ins AS (
       INSERT INTO _onepipe_flow_events (id, flow_name, data, timestamp, offset_seq, traceparent)
       SELECT gen_random_uuid()::text, $1, (${gate.event}), (extract(epoch FROM now()) * 1000)::bigint, c.base + row_number() OVER (ORDER BY ${gate.order}), $2 FROM c, gate
       RETURNING offset_seq
     )
     SELECT gate.*, (SELECT count(*) FROM ins)::bigint AS "$events", (SELECT pg_notify($3, $1)) IS NULL AS "$notified" FROM gate`,
    [flow, traceparent, db.channel(CHANNEL), ...gate.params],
  )
}

function toEvent(r: Row, data?: unknown, traceparent?: string | null): FlowEvent {
  const e: FlowEvent = { id: r.id, offset: Number(r.offset), timestamp: Number(r.timestamp), data: data === undefined ? r.data : data }
  const tp = traceparent ?? r.traceparent
  if (tp) e.traceparent = tp
  return e
}

/**
 * A flow stored in `_onepipe_flow_events`. Appends made concurrently in one
 * process share a statement (one commit for many events), so the per-flow
 * row lock costs one commit per batch; a failed statement rejects every
 * append in it and nothing is kept in memory.
 */
export class PgFlowStore implements FlowStore {
  readonly kind = 'postgres' as const
  #queue: Pending[] = []
  #flushing = false
  readonly #wake = new Waker()
  #listening: Promise<void> | undefined
  readonly #onNotify = (): void => this.#wake.fire()

  constructor(
    private readonly db: Database,
    private readonly flow: string,
  ) {
  }

  append(id: string, data: unknown, traceparent: string | null = null): Promise<FlowEvent> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ id, data, traceparent, resolve, reject })
      if (!this.#flushing) void this.#flush()
    })
  }

  /**
   * Appends events with one statement on `tx`, a transaction on this
   * store's database: they are stored, numbered and announced only if `tx`
   * commits. Local readers are not woken here (the events are not visible
   * before the commit); the NOTIFY sent at commit wakes every reader.
   */
  async appendIn(tx: Queryable, events: readonly Outgoing[]): Promise<FlowEvent[]> {
    const rows = await insertBatch(tx, this.db, this.flow, events)
    if (rows.length !== events.length) throw new TransportError('FLOW_APPEND_INCOMPLETE', `Flow "${this.flow}": stored ${rows.length} of ${events.length} events; roll the transaction back and retry`)
    return events.map((e, i) => toEvent(rows[i] as Row, e.data, e.traceparent))
  }

  /**
   * Runs `gate` and appends one event per row it returns, in one statement
   * (see {@link Gate}); answers the gate's rows (none: nothing changed).
   */
  async appendAfter(traceparent: string | null, gate: Gate): Promise<Record<string, unknown>[]> {
    const rows = await insertAfterGate(this.db, this.db, this.flow, traceparent, gate)
    if (rows.some((r) => Number(r.$events) !== rows.length)) throw new TransportError('FLOW_APPEND_INCOMPLETE', `Flow "${this.flow}": changes were made without their events; this cannot commit apart, report it`)
    if (rows.length > 0) this.#wake.fire()
    return rows
  }

  // One statement in flight per flow and process: the counter row's lock
  // serializes them at the server anyway, and a single lane keeps the
  // offsets of one process's appends in the order they were called.
  async #flush(): Promise<void> {
    this.#flushing = true
    try {
      for (;;) {
        // Let every append issued in this tick (and the continuations of the
        // batch just resolved) join the next statement, instead of sending a
        // batch of one and making the rest wait behind it.
        await new Promise((r) => setImmediate(r))
        if (this.#queue.length === 0) break
        const batch = this.#queue.splice(0, MAX_BATCH)
        try {
          const rows = await insertBatch(this.db, this.db, this.flow, batch)
          if (rows.length !== batch.length) throw new TransportError('FLOW_APPEND_INCOMPLETE', `Flow "${this.flow}": stored ${rows.length} of ${batch.length} events; retry the append`)
          batch.forEach((p, i) => p.resolve(toEvent(rows[i] as Row, p.data, p.traceparent)))
          // Local readers need not wait for the NOTIFY round trip.
          this.#wake.fire()
        } catch (e) {
          for (const p of batch) p.reject(e)
        }
      }
    } finally {
      this.#flushing = false
    }
  }

  async read(after: number, limit: number): Promise<FlowEvent[]> {
    return (await selectAfter(this.db, this.flow, after, limit)).map((r) => toEvent(r))
  }

  async tail(n: number): Promise<FlowEvent[]> {
    return (await selectTail(this.db, this.flow, n)).map((r) => toEvent(r))
  }

  head(): Promise<number> {
    return selectHead(this.db, this.flow)
  }

  listen(): Promise<void> {
    this.#listening ??= notifierOf(this.db)
      .add(this.flow, this.#onNotify)
      .catch((e: unknown) => {
        this.#listening = undefined
        throw e
      })
    return this.#listening
  }

  nextWake(): Promise<void> {
    return this.#wake.next()
  }

  async sweep(maxAgeMs: number | undefined, maxEvents: number | undefined): Promise<number> {
    let n = 0
    if (maxAgeMs !== undefined) n += await deleteOlderThan(this.db, this.flow, maxAgeMs)
    if (maxEvents !== undefined) n += await deleteBeyondCount(this.db, this.flow, maxEvents)
    return n
  }

  async close(): Promise<void> {
    if (!this.#listening) return
    this.#listening = undefined
    await notifierOf(this.db).remove(this.flow, this.#onNotify)
    this.#wake.fire()
  }
}
