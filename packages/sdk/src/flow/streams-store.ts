import { ConfigError } from '@onepipe/core'
import type { FlowStore } from './types.js'

/**
 * The store for a flow without `.db()`: the OnePipe streams server
 * (`ONEPIPE_STREAMS_URL`, namespace `flows/{name}`).
 */
export function streamsFlowStore(name: string): FlowStore {
  throw new ConfigError(
    'FLOW_STREAMS_UNAVAILABLE',
    `Flow "${name}" has no .db(), so it would live in the streams server, which this version of @onepipe/sdk cannot reach yet. Store it in PostgreSQL instead: Flow.create('${name}').db(db).build()`,
  )
}
