export { lockDirectory, waitForPreviousMs, type DirLock } from './lock.js'
