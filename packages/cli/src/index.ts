export { readManifest } from './manifest.js'
