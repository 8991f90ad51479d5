import type { Database, Logger } from '@onepipe/core'
import type { Flow } from '../flow/flow.js'
import type { Workflow } from '../workflow/workflow.js'
import type { SemanticEvent } from './context.js'
import { advanceCursor, leaseCursor, releaseCursor } from './sql.js'

/** The event as the Things flow stores it (`{ type, noun, verb, id, data }`). */
export type StoredEvent = Omit<SemanticEvent, 'offset'>

/** Whether an `on` pattern (`Order.created`, `*.created`, `Order.*`, `*.*`) matches an event type. */
export function matches(pattern: { noun: string; verb: string }, type: string): boolean {
  const dot = type.indexOf('.')
  const noun = type.slice(0, dot)
  const verb = type.slice(dot + 1)
  return (pattern.noun === '*' || pattern.noun === noun) && (pattern.verb === '*' || pattern.verb === verb)
}

/** What one handler's runner works with. */
export interface RunnerDeps {
  app: string
  handler: string
  pattern: { noun: string; verb: string }
  events: Flow<StoredEvent>
  workflow: Workflow<SemanticEvent, unknown>
  db: Database
  owner: string
  log: Logger
  /** Where a new handler starts: after the events that exist when it is first seen (`head`) or from the beginning (0). */
  startAt: 'head' | 'start'
  leaseMs: number
  batch: number
}

/**
 * Moves one `$.on` handler through its flow: takes the cursor's lease,
 * reads the events after it, starts one workflow run per matching event
 * (its id derived from the handler and the event, so a run started before
 * a crash is found again, never duplicated), waits for the runs (events of
 * one subject one after another, in offset order; subjects side by side),
 * and only then moves the cursor. Answers true when it did work (call
 * again at once), false when there was nothing to do or the lease is held
 * elsewhere.
 */
export async function step(d: RunnerDeps, signal: AbortSignal): Promise<boolean> {
  const start = d.startAt === 'head' ? await d.events.head() : 0
  const after = await leaseCursor(d.db, d.app, d.handler, d.owner, d.leaseMs, start)
  if (after === undefined) return false
  const events = (await d.events.read({ offset: after, limit: d.batch }))
  if (events.length === 0) return false
  const bySubject = new Map<string, SemanticEvent[]>()
  for (const e of events) {
    if (!e.data || typeof e.data.type !== 'string' || !matches(d.pattern, e.data.type)) continue
    const ev: SemanticEvent = { ...e.data, offset: e.offset }
    const subject = `${ev.noun}:${ev.id ?? e.id}`
    const list = bySubject.get(subject)
    if (list) list.push(ev)
    else bySubject.set(subject, [ev])
  }
  await Promise.all(
    [...bySubject.values()].map(async (list) => {
      for (const ev of list) {
        if (signal.aborted) return
        const runId = `on:${d.app}:${d.handler}:${ev.offset}`
        await d.workflow.start(ev, { workflowId: runId })
        // A failed run stays failed (visible, retryable from the dashboard); the handler moves on.
        await d.workflow.result(runId).catch((err: unknown) => d.log.error({ err, handler: d.handler, runId }, 'semantic: a handler run failed; retry it from its workflow run'))
      }
    }),
  )
  if (signal.aborted) return false
  const last = events.at(-1)
  if (last && !(await advanceCursor(d.db, d.app, d.handler, d.owner, last.offset))) {
    d.log.warn({ handler: d.handler }, 'semantic: lost the cursor lease while handling a batch; another instance continues (runs already started are found again by id)')
    return false
  }
  return true
}

/** Hands the cursor back at a clean stop. */
export function release(d: RunnerDeps): Promise<void> {
  return releaseCursor(d.db, d.app, d.handler, d.owner)
}
