import {
  assertDatabase,
  checkText,
  ConfigError,
  NotFoundError,
  parseDuration,
  registerPrimitive,
  resolveRetry,
  type Component,
  type Database,
  type Duration,
  type RetryPolicy,
  type RuntimeContext,
} from '@onepipe/core'
import { checkSpec, HANDLER_NAME, type PipelineSpec, type StageSpec } from './definition.js'
import { insertPipeline, type CreatedPipeline } from './store.js'

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/
const STAGE_OPTIONS = new Set(['handler', 'dependsOn', 'parallelWith', 'timeout', 'retry', 'runNextIfFailed', 'requiresApproval', 'input'])
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * One stage of a {@link Pipeline} template.
 *
 * @example
 * ```ts
 * { handler: 'vision.analyze', timeout: '5m', retry: { attempts: 3, backoff: 'exponential', delay: '2s' } }
 * ```
 */
export interface StageOptions {
  /** The handler name workers register for (`vision.analyze`). */
  handler: string
  /** Stages that must finish first. Default: the stage (or parallel group) declared before this one. */
  dependsOn?: string[]
  /** Stages that start together with this one (they share its dependencies). */
  parallelWith?: string[]
  /** Longest one attempt may run (`'5m'`, ms); past it the attempt is over and the retry policy decides. */
  timeout?: Duration
  /** Attempts in all (default 1), backoff (default exponential), delay (default 1 s), maxDelay (default 5 min). */
  retry?: RetryPolicy
  /** A failure of this stage still lets the stages after it run. */
  runNextIfFailed?: boolean
  /** Wait for an operator's approval (`POST /stages/{id}/resume`) before a worker gets it. */
  requiresApproval?: boolean
  /** The stage's own input, handed to the worker instead of the pipeline's input (default: the pipeline's). */
  input?: unknown
}

/**
 * What `pipeline.run()` takes besides the input.
 *
 * @example
 * ```ts
 * { application: app.id, idempotencyKey: `blueprint:${upload.id}`, context: { customer: 'acme' } }
 * ```
 */
export interface RunPipelineOptions {
  /** The application (auth) whose workers run it; default the template's `.application()`. */
  application?: string
  /** The same key answers the pipeline it created before instead of creating another. */
  idempotencyKey?: string
  /** Initial context items, handed to every stage and merged with what stages add. */
  context?: Record<string, unknown>
  keywords?: string[]
}

/**
 * A pipeline template in code: stages run by external workers (any
 * language, over HTTP: docs/protocol/workers.md) as their dependencies
 * complete. Served with `serve({ pipelines: [blueprint] })`, which also
 * starts the control plane (`@onepipe/pipelines`).
 *
 * @example
 * ```ts
 * const blueprint = Pipeline.create('blueprint')
 *   .stage('analyze', { handler: 'vision.analyze', timeout: '5m', retry: { attempts: 3, backoff: 'exponential' } })
 *   .stage('bid', { handler: 'pricing.bid', dependsOn: ['analyze'] })
 *   .build()
 * const { pipelineId } = await blueprint.run({ file: 'plan.pdf' }, { application: app.id, idempotencyKey: upload.id })
 * ```
 */
export class Pipeline implements Component {
  readonly kind = 'pipeline'
  readonly name: string
  /** The stages with every option decided (dependencies included). */
  readonly stages: readonly StageSpec[]
  #db: Database | undefined
  readonly #application: string | undefined
  readonly #knownApps = new Set<string>()

  /** @internal Use `Pipeline.create(name)…build()`. */
  constructor(name: string, stages: StageSpec[], db: Database | undefined, application: string | undefined) {
    this.name = name
    this.stages = stages
    this.#db = db
    this.#application = application
  }

  /**
   * Starts building a template.
   *
   * @throws ConfigError `PIPELINE_BAD_NAME` for a name outside `[A-Za-z0-9_.:-]{1,128}`
   * @example
   * ```ts
   * Pipeline.create('blueprint').stage('analyze', { handler: 'vision.analyze' }).build()
   * ```
   */
  static create(name: string): PipelineBuilder {
    return new PipelineBuilder(name)
  }

  /** @internal serve() hands over the app's database. */
  async attach(rt: RuntimeContext): Promise<void> {
    this.#db ??= rt.db
    await this.#db.ready()
  }

  /**
   * Creates one run of this template: its first stages become ready and
   * parked workers get them at once.
   *
   * @returns `{ pipelineId, created }` (created false when the idempotency key answered an earlier run)
   * @throws ValidationError (400) for an input or context that cannot round-trip as JSON (context must be an
   *   object); ConflictError 409 `IDEMPOTENCY_KEY_REUSED` for a key used with another input; NotFoundError 404
   *   `APPLICATION_NOT_FOUND` for an application that does not exist; ConfigError without an application
   *
   * @example
   * ```ts
   * const { pipelineId } = await blueprint.run({ file: 'plan.pdf' }, { application: app.id, idempotencyKey: 'upload-17' })
   * ```
   */
  async run(input: unknown, o: RunPipelineOptions = {}): Promise<CreatedPipeline> {
    const appId = o.application ?? this.#application
    if (appId === undefined) throw new ConfigError('PIPELINE_NO_APPLICATION', `Pipeline "${this.name}" needs the application whose workers run it: .application(id) on the builder or { application } in run()`)
    checkText(appId, { subject: 'application', path: 'application', max: 128 })
    if (o.idempotencyKey !== undefined) checkText(o.idempotencyKey, { subject: 'idempotencyKey', path: 'idempotencyKey', max: 256 })
    const spec: PipelineSpec = checkSpec({ name: this.name, keywords: o.keywords ?? [], context: o.context ?? {}, ...(input === undefined ? {} : { input }), stages: this.stages.map((s) => ({ ...s })) })
    await this.#checkApplication(appId)
    return insertPipeline(this.#database(), { appId, spec, template: this.name, idempotencyKey: o.idempotencyKey })
  }

  /** A pipeline of an application that does not exist could never be run by anyone: refused, once per id. */
  async #checkApplication(appId: string): Promise<void> {
    if (this.#knownApps.has(appId)) return
    const [row] = UUID.test(appId) ? await this.#database().query('SELECT 1 AS ok FROM _onepipe_auth_applications WHERE id = $1', [appId]) : []
    if (!row) throw new NotFoundError('APPLICATION_NOT_FOUND', `No application with the id "${appId}": a pipeline runs for an application's id (a UUID), not its name; GET /__onepipe/auth/applications lists them, auth.applications.create({ name }) makes one`)
    if (this.#knownApps.size > 1000) this.#knownApps.clear()
    this.#knownApps.add(appId)
  }

  /** The template as a definition posted over the API would give it (the template name and its stages). */
  spec(input?: unknown, o: Omit<RunPipelineOptions, 'idempotencyKey' | 'application'> = {}): PipelineSpec {
    return checkSpec({ name: this.name, keywords: o.keywords ?? [], context: o.context ?? {}, ...(input === undefined ? {} : { input }), stages: this.stages.map((s) => ({ ...s })) })
  }

  #database(): Database {
    if (!this.#db) throw new ConfigError('PIPELINE_NO_DATABASE', `Pipeline "${this.name}" has no database: give it .db(db) or pass it to serve()`)
    return this.#db
  }
}

/**
 * Fluent configuration for a {@link Pipeline}.
 *
 * @example
 * ```ts
 * Pipeline.create('etl').stage('extract', { handler: 'etl.extract' }).stage('load', { handler: 'etl.load' }).build()
 * ```
 */
export class PipelineBuilder {
  readonly #name: string
  readonly #stages: (Omit<StageSpec, 'dependsOn'> & { dependsOn?: string[] })[] = []
  #db: Database | undefined
  #application: string | undefined

  constructor(name: string) {
    if (typeof name !== 'string' || !NAME.test(name)) throw new ConfigError('PIPELINE_BAD_NAME', `Pipeline name "${String(name)}" is invalid: use letters, digits, "_", "-", "." or ":" (up to 128)`)
    this.#name = name
  }

  /**
   * Adds a stage. Without `dependsOn` it waits for the stage (or parallel
   * group) declared just before it.
   *
   * @throws ConfigError `PIPELINE_BAD_STAGE` for a bad name, handler, timeout or retry policy
   * @example
   * ```ts
   * .stage('bid', { handler: 'pricing.bid', dependsOn: ['analyze'], timeout: '1m' })
   * ```
   */
  stage(name: string, o: StageOptions): this {
    const where = `Stage "${name}" of pipeline "${this.#name}"`
    // A typo (`retries` for `retry`) must not pass silently from JavaScript, where nothing checks the type.
    const unknown = Object.keys(o ?? {}).filter((k) => !STAGE_OPTIONS.has(k))
    if (unknown.length > 0) throw new ConfigError('PIPELINE_BAD_STAGE', `${where}: unknown option ${unknown.map((k) => `"${k}"`).join(', ')}; the options are ${[...STAGE_OPTIONS].join(', ')}`)
    if (typeof name !== 'string' || !NAME.test(name)) throw new ConfigError('PIPELINE_BAD_STAGE', `${where}: the name must be letters, digits, "_", "-", "." or ":" (up to 128)`)
    if (typeof o?.handler !== 'string' || !HANDLER_NAME.test(o.handler)) throw new ConfigError('PIPELINE_BAD_STAGE', `${where}: handler "${String(o?.handler)}" must be 1-128 letters, digits, "_", "-", "." or ":", starting with a letter`)
    let timeoutMs: number | null = null
    if (o.timeout !== undefined) {
      timeoutMs = parseDuration(o.timeout)
      if (timeoutMs < 1) throw new ConfigError('PIPELINE_BAD_STAGE', `${where}: timeout must be at least 1 ms`)
    }
    const r = resolveRetry(o.retry, { attempts: 1, backoff: 'exponential', delayMs: 1000, maxDelayMs: 300_000 })
    this.#stages.push({
      name,
      handler: o.handler,
      ...(o.input === undefined ? {} : { input: o.input }),
      ...(o.dependsOn === undefined ? {} : { dependsOn: [...o.dependsOn] }),
      parallelWith: [...(o.parallelWith ?? [])],
      maxRetries: r.attempts - 1,
      retryIntervalMs: r.delayMs,
      maxRetryIntervalMs: r.maxDelayMs,
      backoff: r.backoff,
      timeoutMs,
      runNextIfFailed: o.runNextIfFailed ?? false,
      requiresApproval: o.requiresApproval ?? false,
    })
    return this
  }

  /** The application whose workers run this template's pipelines by default. @example `.application(app.id)` */
  application(id: string): this {
    this.#application = checkText(id, { subject: 'application', path: 'application', max: 128 })
    return this
  }

  /** The database holding the pipelines (default: the app's, under `serve()`). @example `.db(db)` */
  db(db: Database): this {
    this.#db = assertDatabase(db, `Pipeline "${this.#name}"`)
    return this
  }

  /**
   * Checks the whole template (unique names, known and acyclic
   * dependencies) and builds it.
   *
   * @throws ConfigError `PIPELINE_INVALID` naming the stage and the problem
   */
  build(): Pipeline {
    let spec: PipelineSpec
    try {
      spec = checkSpec({ name: this.#name, keywords: [], context: {}, stages: this.#stages })
    } catch (e) {
      throw new ConfigError('PIPELINE_INVALID', `Pipeline "${this.#name}": ${e instanceof Error ? e.message : String(e)}`)
    }
    registerPrimitive({ primitive: 'pipeline', name: this.#name, infrastructure: ['postgresql'], config: { stages: spec.stages.map((s) => ({ name: s.name, handler: s.handler, dependsOn: s.dependsOn })) } })
    return new Pipeline(this.#name, spec.stages, this.#db, this.#application)
  }
}
