// Cron: scheduled jobs that run exactly once per tick across instances.
export { Cron, type CronContext, type CronHandler, type CronInfo, type WorkflowStarter } from './cron.js'
export { CronBuilder } from './builder.js'
export { Schedule as CronSchedule } from './schedule.js'
export type { CronExecution } from './sql.js'
export type { LeaseTimings } from './lease.js'
