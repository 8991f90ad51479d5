// RabbitMQ dispatch: being built (see docs/pipelines.md). Until it lands,
// asking for it fails at start with a clear error instead of falling back.
import { ConfigError, type Database, type Logger } from '@onepipe/core'
import type { Job, StageEngine } from '../engine/engine.js'
import type { Dispatch } from './postgres.js'

export class RabbitDispatch implements Dispatch {
  constructor(_db: Database, _engine: StageEngine, _o: { log: Logger; url: string }) {}
  readonly parked = 0
  start(): Promise<void> {
    return Promise.reject(new ConfigError('PIPELINES_RABBITMQ_UNAVAILABLE', 'RabbitMQ dispatch is not available in this build; unset RABBITMQ_URL or call .postgresDispatch()'))
  }
  stop(): Promise<void> {
    return Promise.resolve()
  }
  pull(): Promise<Job[]> {
    return Promise.resolve([])
  }
}
