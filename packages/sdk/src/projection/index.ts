export { Projection, ProjectionBuilder, type ProjectionStatus, type ProjectionReducer } from './projection.js'
