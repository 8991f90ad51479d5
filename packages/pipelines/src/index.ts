// @onepipe/pipelines: the control plane of OnePipe's pipelines — the stage
// engine, dispatch, the watchdog and the external API workers speak
// (docs/pipelines.md, docs/protocol/workers.md). Templates are built with
// `Pipeline` from @onepipe/sdk.
export { ControlPlane, ControlPlaneBuilder } from './control-plane.js'
export { StageEngine, CHANGES_CHANNEL, type Job, type Ack, type PipelineChange } from './engine/engine.js'
export { PipelineOps, type PipelineView, type StageView } from './engine/ops.js'
export { StaleAttemptError, JobCancelledError } from './engine/errors.js'
export type { ApiCaller } from './api/callers.js'
export { HandlerPolicies, ALL_APPLICATIONS, type HandlerPolicy, type HandlerPolicyView, type HandlerPolicyAnswer } from './engine/policies.js'
