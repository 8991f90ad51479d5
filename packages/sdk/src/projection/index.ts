export { Projection, ProjectionBuilder, type ProjectionStatus, type Reducer } from './projection.js'
