// The semantic layer (docs/semantic.md): `$.on.Noun.verb` durable handlers over a
// Things store's events, `$.every` / `$.at` schedules on the Cron engine, and
// `$.do` / `$.try` / `$.send` inside them, each handled event a workflow run.
export { Semantic, SemanticBuilder, type EventSource, type OnHandler, type ScheduledHandler, type HandlerOptions, type Every, type On, type DayAt, type DayWord, type AtProperty } from './semantic.js'
export { type HandlerContext, type DoOptions, type SemanticEvent } from './context.js'
export { parseTime, dayAt, everyN } from './schedule.js'
