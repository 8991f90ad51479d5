// Shapes of docs/dashboard.md's internal API, as the console reads them.

export interface User {
  id: string
  kind?: 'user' | 'application'
  email?: string
  roles: string[]
  permissions?: string[]
  applicationId?: string
}

export interface Catalog {
  app: { name: string; version?: string; instanceId?: string }
  user?: User
  flows: { name: string }[]
  signals: { name: string }[]
  projections: { name: string; flow: string }[]
  workflows: { name: string; inputSchema: unknown }[]
  cron: { name: string; schedule: string; timezone?: string | null }[]
  channels: { name: string; idempotent: boolean; inputSchema: unknown; outputSchema: unknown }[]
  pipelines: { name: string; stages: { name: string; handler: string; dependsOn: string[] }[] }[]
  features: { pipelines: boolean; auth: boolean }
}

export interface Instance {
  id: string
  version?: string
  host?: string
  pid?: number
  startedAt?: string
  heartbeatAt?: string
  live: boolean
}

export interface PipelineSummary {
  id: string
  appId: string
  name: string
  template: string | null
  status: string
  keywords: string[]
  createdAt: string | null
  updatedAt: string | null
  finishedAt: string | null
  stageCounts?: Record<string, number>
  input?: unknown
  context?: Record<string, unknown>
}

export interface Attempt {
  executionId: string
  attempt: number
  workerId: string | null
  workerName?: string | null
  startedAt: string | null
  endedAt: string | null
  outcome: string | null
  error: unknown
}

export interface Stage {
  id: string
  name: string
  handler: string
  status: string
  attempt: number
  dependsOn: string[]
  runInParallelWith: string[]
  requiresApproval: boolean
  workerId: string | null
  /** Sent by apps that know it; otherwise looked up in the workers list. */
  workerName?: string | null
  startedAt: string | null
  finishedAt: string | null
  output: unknown
  error: unknown
  approval: unknown
  attempts: Attempt[]
}

export interface Pipeline extends PipelineSummary {
  stages: Stage[]
}

export interface LogLine {
  id: number | string
  stageId: string | null
  level: string
  message: string
  at: string
}

export interface Template {
  name: string
  stages: { name: string; handler: string; dependsOn?: string[] }[]
}

export interface Worker {
  workerId: string
  appId: string
  name: string
  handlers: string[]
  concurrency: number
  status: string
  drain: boolean
  inFlight: number
  heartbeatAt: string | null
  host?: string | null
  version?: string | null
}

export interface WorkerEvent {
  id: number | string
  kind: string
  data: unknown
  at: string
}

export interface RunSummary {
  workflowId: string
  workflowName: string
  status: string
  error?: unknown
  createdAt: string
  updatedAt?: string
  completedAt?: string | null
}

export interface RunDetail {
  run: RunSummary & { input: unknown; output: unknown; wakeAt?: string | null }
  steps: { stepId: string; status: string; result: unknown; error: unknown; attempts: number; createdAt: string }[]
  pendingSignals: { name: string; data: unknown; createdAt: string }[]
}

export interface CronJob {
  name: string
  schedule: string
  timezone?: string | null
  paused: boolean
  nextRuns: string[]
  /** Who runs the job now; null while no instance holds it. */
  lease: { holder: string; expiresAt?: string; fencingToken?: number; live?: boolean } | null
}

export interface CronExecution {
  executionId: string
  scheduledTime: string | null
  startedAt: string | null
  finishedAt: string | null
  status: string
  kind: string
  output: unknown
  error: unknown
}

export interface FlowEvent {
  offset: number
  data: unknown
  [k: string]: unknown
}

export interface Projection {
  name: string
  flow: string
  position: number
  head: number
  lag: number
  running?: boolean
  keyed?: boolean
}

export interface ChannelCall {
  id: string
  key: string | null
  outcome: string
  durationMs: number | null
  error: unknown
  at: string
}

export interface ChannelKey {
  key: string
  state: string
  createdAt: string
  expiresAt: string | null
}

/** A person's account as the admin routes answer it (docs/auth.md), not the signed-in caller. */
export type Account = { id: string; email: string; roles: string[]; disabled: boolean; createdAt: string; lastLoginAt: string | null }

export interface Application {
  id: string
  name: string
  disabled: boolean
  createdAt: string
}

export interface ApiKey {
  id: string
  applicationId: string
  name: string
  prefix: string
  roles: string[]
  disabled: boolean
  createdAt: string
  lastUsedAt: string | null
  expiresAt: string | null
  replacedBy: string | null
}
