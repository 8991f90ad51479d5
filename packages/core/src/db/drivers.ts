import { PGlite } from '@electric-sql/pglite'
import postgres from 'postgres'
import { lockDirectory, type DirLock } from '../fs/index.js'
import type { NotifyHandler, Row } from './types.js'

/** What a driver answers for one statement. */
export interface DriverResult {
  rows: Row[]
  rowCount: number
}

/** A connection (or pool) able to run one statement. */
export interface DriverQueryable {
  query(text: string, params: readonly unknown[]): Promise<DriverResult>
  /** Runs several `;`-separated statements with no parameters. */
  exec(text: string): Promise<void>
}

/** The engine behind a Database; one per engine kind. */
export interface Driver extends DriverQueryable {
  transaction<T>(fn: (tx: DriverQueryable) => Promise<T>): Promise<T>
  /** `onReconnect` runs each time the listening connection was lost and listens again (never the first time). */
  listen(channel: string, fn: NotifyHandler, onReconnect?: () => void): Promise<() => Promise<void>>
  close(): Promise<void>
}

/** int8 comes back as a JS number on both engines (PGlite does so natively). */
const int8 = {
  to: 20,
  from: [20],
  serialize: (x: unknown) => String(x),
  parse: (x: string) => Number(x),
}

/** One LISTENed channel of a pool and the handlers it dispatches to. */
interface ListenChannel {
  handlers: Set<{ fn: NotifyHandler; onReconnect: (() => void) | undefined }>
  ready: Promise<void>
}

export interface PostgresDriverOptions {
  url: string
  max: number
  schema: string | undefined
  applicationName: string
}

/** PostgreSQL through postgres.js: pooled, prepared statements, LISTEN with reconnect. */
export function postgresDriver(o: PostgresDriverOptions): Driver {
  const sql = postgres(o.url, {
    max: o.max,
    idle_timeout: 30,
    connect_timeout: 10,
    onnotice: () => undefined,
    types: { int8 },
    connection: {
      application_name: o.applicationName,
      ...(o.schema ? { search_path: `"${o.schema}"` } : {}),
    },
  })
  const wrap = (q: postgres.Sql | postgres.TransactionSql): DriverQueryable => ({
    async query(text, params) {
      // Parameterized statements are prepared once per connection (what
      // postgres.js does for tagged templates): parse and plan are skipped
      // on every later call, which triples workflow throughput.
      const r = await q.unsafe(text, params as postgres.ParameterOrJSON<never>[], { prepare: params.length > 0 })
      return { rows: r as unknown as Row[], rowCount: r.count ?? r.length }
    },
    async exec(text) {
      await q.unsafe(text)
    },
  })
  const base = wrap(sql)
  const channels = new Map<string, ListenChannel>()
  return {
    ...base,
    async transaction(fn) {
      // A reserved connection with BEGIN sent ahead of the first statement (postgres.js pipelines
      // queries on a connection): a transaction costs one round trip less than begin-then-run.
      const r = await sql.reserve()
      const begun = r.unsafe('begin').execute()
      // Its failure surfaces through the first statement (or the commit); never unhandled.
      begun.catch(() => undefined)
      const inTx = wrap(r)
      const tx: DriverQueryable = {
        async query(text, params) {
          const p = inTx.query(text, params)
          await begun
          return p
        },
        async exec(text) {
          const p = inTx.exec(text)
          await begun
          return p
        },
      }
      try {
        const out = await fn(tx)
        await begun
        await r.unsafe('commit')
        return out
      } catch (e) {
        // A broken connection cannot roll back; the server does it when the connection ends.
        await r.unsafe('rollback').catch(() => undefined)
        throw e
      } finally {
        r.release()
      }
    },
    async listen(channel, fn, onReconnect) {
      const handler = { fn, onReconnect }
      let ch = channels.get(channel)
      if (!ch) {
        const entry: ListenChannel = { handlers: new Set(), ready: Promise.resolve() }
        // postgres.js calls onlisten each time LISTEN is (re)issued: after the first, every call follows a
        // lost connection, and NOTIFYs sent during the gap are gone.
        let first = true
        entry.ready = sql
          .listen(
            channel,
            (payload) => {
              for (const h of entry.handlers) h.fn(payload)
            },
            () => {
              if (first) first = false
              else for (const h of entry.handlers) h.onReconnect?.()
            },
          )
          .then(() => undefined)
        channels.set(channel, (ch = entry))
        // A failed first LISTEN leaves no entry behind, so the next listen tries again.
        entry.ready.catch(() => channels.delete(channel))
      }
      await ch.ready
      ch.handlers.add(handler)
      const entry = ch
      // The LISTEN itself stays for the pool's life: postgres.js re-creates its listener on every
      // reconnect, so an unlisten after one would not find it; a channel without handlers costs nothing.
      return async () => {
        entry.handlers.delete(handler)
      }
    },
    async close() {
      await sql.end({ timeout: 5 })
    },
  }
}

/**
 * Embedded PostgreSQL (PGlite, Postgres compiled to WASM) in one process.
 * Same SQL and migrations as the server; one connection, so statements queue.
 *
 * A folder on disk is locked for this process first: PGlite has no lock of
 * its own, and two processes on one folder each believe they own it (both
 * hand out the same ids, and the last to write loses the other's commits).
 */
export async function pgliteDriver(dataDir: string | undefined, schema: string | undefined): Promise<Driver> {
  const onDisk = dataDir !== undefined && !dataDir.includes('://')
  const lock: DirLock | undefined = onDisk
    ? await lockDirectory(dataDir, {
        code: 'DB_DIR_LOCKED',
        what: 'embedded database',
        hint: 'Stop the other process, give this one its own folder with ONEPIPE_DATA_DIR, or set DATABASE_URL so that several processes share one PostgreSQL.',
      })
    : undefined
  let pg: PGlite
  try {
    pg = dataDir ? new PGlite(dataDir) : new PGlite()
    await pg.waitReady
    if (schema) await pg.exec(`CREATE SCHEMA IF NOT EXISTS "${schema}"; SET search_path TO "${schema}"`)
  } catch (e) {
    await lock?.release()
    throw e
  }
  type Tx = Parameters<Parameters<PGlite['transaction']>[0]>[0]
  const wrap = (q: PGlite | Tx): DriverQueryable => ({
    async query(text, params) {
      const r = await q.query<Row>(text, params as unknown[])
      return { rows: r.rows, rowCount: r.affectedRows ?? r.rows.length }
    },
    async exec(text) {
      await q.exec(text)
    },
  })
  const base = wrap(pg)
  return {
    ...base,
    async transaction(fn) {
      return pg.transaction((tx) => fn(wrap(tx)))
    },
    async listen(channel, fn) {
      const unsub = await pg.listen(channel, fn)
      return async () => {
        await unsub()
      }
    },
    async close() {
      try {
        await pg.close()
      } finally {
        await lock?.release()
      }
    },
  }
}

/**
 * A driver that runs every statement of `base` with `schema` first on the
 * search path, set per transaction (`set_config(…, true)`, so it ends with
 * the transaction): a pooled connection never keeps it for its next
 * borrower. A statement outside a transaction gets one of its own. The
 * setting goes out with the first statement, pipelined on the connection.
 * Closing it leaves `base` open: its owner closes that.
 */
export function schemaScopedDriver(base: Driver, schema: string): Driver {
  const path = `"${schema}"`
  const scoped = (tx: DriverQueryable): DriverQueryable & { settled(): Promise<void> } => {
    const set = tx.query("SELECT set_config('search_path', $1, true)", [path])
    // Its failure surfaces through the next statement (or settled()); never unhandled.
    set.catch(() => undefined)
    return {
      // Both awaited together: whichever fails, neither rejection is left unhandled.
      async query(text, params) {
        return (await Promise.all([set, tx.query(text, params)]))[1]
      },
      async exec(text) {
        await Promise.all([set, tx.exec(text)])
      },
      async settled() {
        await set
      },
    }
  }
  return {
    query: (text, params) => base.transaction((tx) => scoped(tx).query(text, params)),
    exec: (text) => base.transaction((tx) => scoped(tx).exec(text)),
    async transaction(fn) {
      return base.transaction(async (tx) => {
        const s = scoped(tx)
        const out = await fn(s)
        await s.settled()
        return out
      })
    },
    listen: (channel, fn, onReconnect) => base.listen(channel, fn, onReconnect),
    async close() {},
  }
}
