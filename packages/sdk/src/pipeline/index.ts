// Pipeline: templates of stages run by external workers (docs/pipelines.md).
// The control plane that hands the stages out lives in @onepipe/pipelines.
export { Pipeline, PipelineBuilder, type StageOptions, type RunPipelineOptions } from './pipeline.js'
export {
  parsePipelineDefinition,
  parseAppendedStages,
  checkSpec,
  MAX_STAGES,
  HANDLER_NAME,
  type PipelineDefinition,
  type PipelineSpec,
  type StageSpec,
  type Backoff,
} from './definition.js'
export { insertPipeline, stageRow, notifyReady, requestHash, READY_CHANNEL, CHANGES_CHANNEL, type CreatedPipeline, type NewPipeline } from './store.js'
