import { afterAll, beforeAll } from 'vitest'

// Fails a test file that leaves a timer, socket or server of its own running:
// a primitive whose stop() forgets a setInterval is a bug users would feel as
// a process that never exits.
let baseline = new Map<string, number>()

function counts(): Map<string, number> {
  const m = new Map<string, number>()
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1)
  return m
}

beforeAll(() => {
  baseline = counts()
})

afterAll(async () => {
  const watched = ['Timeout', 'TCPServerWrap', 'TCPSocketWrap', 'PipeWrap', 'ProcessWrap']
  let leaked: string[] = []
  // Closed sockets release their handle a tick or two later.
  for (let i = 0; i < 20; i++) {
    const now = counts()
    leaked = watched.filter((k) => (now.get(k) ?? 0) > (baseline.get(k) ?? 0)).map((k) => `${k} x${(now.get(k) ?? 0) - (baseline.get(k) ?? 0)}`)
    if (leaked.length === 0) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`Test file left resources running: ${leaked.join(', ')}. Stop every worker, timer and server in afterAll.`)
})
