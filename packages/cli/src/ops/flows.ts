import { NotFoundError, type Database } from '@onepipe/core'
import type { FlowEvent } from '@onepipe/sdk'
import { Command, nonNegativeInteger, Option } from '@onepipe/streams/cli'
import { withDatabase } from './database.js'
import { untilSignal } from './signals.js'
import { cell, printJson, printTable } from './output.js'

/** One flow as `onepipe flows list` shows it. */
export interface FlowSummary {
  name: string
  /** The highest offset handed out (0 when none); retention never lowers it. */
  head: number
  /** Events stored now (retention may have deleted older ones). */
  events: number
  createdAt: Date
  /** When the newest stored event was appended, null when none is stored. */
  lastAppendAt: Date | null
}

/**
 * The flows kept in the database (`Flow.create(name).db(db)`), by name.
 * Flows kept in the streams server are not in it.
 *
 * @example
 * ```ts
 * const flows = await listFlows(db) // [{ name: 'orders', head: 42, events: 42, … }]
 * ```
 */
export async function listFlows(db: Database): Promise<FlowSummary[]> {
  const rows = await db.query<{ name: string; head: number; events: number; created_at: Date; last_ms: number | null }>(
    `SELECT f.flow_name AS name, f.last_offset AS head, f.created_at,
            (SELECT count(*) FROM _onepipe_flow_events e WHERE e.flow_name = f.flow_name) AS events,
            (SELECT max(e.timestamp) FROM _onepipe_flow_events e WHERE e.flow_name = f.flow_name) AS last_ms
     FROM _onepipe_flows f ORDER BY f.flow_name`,
  )
  return rows.map((r) => ({ name: r.name, head: Number(r.head), events: Number(r.events), createdAt: r.created_at, lastAppendAt: r.last_ms === null ? null : new Date(Number(r.last_ms)) }))
}

/** What `onepipe flows tail` prints, and where it starts. */
export interface TailOptions {
  /** Print the events after this offset; without it, the last `limit` events. */
  from?: number
  /** At most this many events before following (default 20). */
  limit: number
  /** Keep printing new events until `signal` aborts. */
  follow: boolean
  signal?: AbortSignal
}

/**
 * Reads a flow of the database with the Flow primitive and hands each event
 * to `print`, in offset order: the last `limit` events or those after
 * `from`, then, with `follow`, every new one as it is appended until the
 * signal aborts.
 *
 * @throws NotFoundError `FLOW_NOT_FOUND` for a flow with nothing in the database
 *
 * @example
 * ```ts
 * const ac = new AbortController()
 * await tailFlow(db, 'orders', { limit: 10, follow: true, signal: ac.signal }, (e) => console.log(e.offset, e.data))
 * ```
 */
export async function tailFlow(db: Database, name: string, o: TailOptions, print: (e: FlowEvent) => void): Promise<void> {
  const { Flow } = await import('@onepipe/sdk')
  const flow = Flow.create(name).db(db).build()
  try {
    const [known] = await db.query<{ head: number }>('SELECT last_offset AS head FROM _onepipe_flows WHERE flow_name = $1', [name])
    if (!known) throw new NotFoundError('FLOW_NOT_FOUND', `No flow "${name}" in this database (onepipe flows list shows them); flows kept in the streams server are not read here`, { flow: name })
    if (o.follow && o.from !== undefined) {
      // From an offset, the stream pages through the backlog itself: no limit applies.
      for await (const e of flow.stream({ live: true, offset: o.from, ...(o.signal ? { signal: o.signal } : {}) })) print(e)
      return
    }
    const first = o.from !== undefined ? await flow.read({ offset: o.from, limit: o.limit }) : await flow.read({ tail: o.limit, limit: o.limit })
    for (const e of first) print(e)
    if (!o.follow) return
    const after = first.at(-1)?.offset ?? Number(known.head)
    for await (const e of flow.stream({ live: true, offset: after, ...(o.signal ? { signal: o.signal } : {}) })) print(e)
  } finally {
    await flow.close()
  }
}

const eventJson = (e: FlowEvent) => ({ offset: e.offset, id: e.id, timestamp: new Date(e.timestamp).toISOString(), data: e.data })

/**
 * Adds `flows list` and `flows tail <name>` to a program.
 *
 * @example
 * ```ts
 * addFlowCommands(program)
 * await runProgram(program, ['flows', 'tail', 'orders', '--follow', '--json'])
 * ```
 */
export function addFlowCommands(program: Command): void {
  const flows = program.command('flows').description('the flows (event logs) kept in the database')
  flows
    .command('list')
    .description('every flow of the database: name, head offset, events stored, last append')
    .addOption(new Option('--json', 'print one JSON document: { flows: [{ name, head, events, createdAt, lastAppendAt }] }').default(false))
    .addHelpText('after', '\nExamples:\n  onepipe flows list\n  DATABASE_URL=postgres://… onepipe flows list --json')
    .action(async (flags: { json: boolean }) => {
      const list = await withDatabase(listFlows)
      if (flags.json) return printJson({ flows: list })
      printTable(list, [
        { header: 'FLOW', value: (r) => r.name },
        { header: 'HEAD', value: (r) => String(r.head) },
        { header: 'EVENTS', value: (r) => String(r.events) },
        { header: 'LAST APPEND', value: (r) => cell(r.lastAppendAt) },
      ], 'no flows in this database')
    })

  flows
    .command('tail')
    .description("print a flow's events: the last --limit, or those after --from; --follow keeps printing new ones until Ctrl-C or SIGTERM")
    .argument('<name>', 'the flow')
    .addOption(new Option('--from <offset>', 'print the events after this offset (0: from the first)').argParser(nonNegativeInteger))
    .addOption(new Option('--limit <n>', 'at most this many events before following (1-1000)').argParser(nonNegativeInteger).default(20))
    .addOption(new Option('-f, --follow', 'keep printing events as they are appended').default(false))
    .addOption(new Option('--json', 'print one JSON line per event: { offset, id, timestamp, data }').default(false))
    .addHelpText('after', '\nExamples:\n  onepipe flows tail orders\n  onepipe flows tail orders --from 0 --limit 1000 --json\n  onepipe flows tail orders --follow')
    .action(async (name: string, flags: { from?: number; limit: number; follow: boolean; json: boolean }, cmd: Command) => {
      if (flags.limit < 1 || flags.limit > 1000) cmd.error('error: --limit must be from 1 to 1000')
      const print = flags.json
        ? (e: FlowEvent) => printJson(eventJson(e), 'line')
        : (e: FlowEvent) => process.stdout.write(`${e.offset}  ${new Date(e.timestamp).toISOString()}  ${JSON.stringify(e.data)}\n`)
      await untilSignal((signal) => withDatabase((db) => tailFlow(db, name, { ...flags, signal }, print)))
    })
}
