export { lockDirectory, type DirLock } from './lock.js'
