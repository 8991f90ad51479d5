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
  // Closed sockets and exited children release their handles a little later,
  // later still on a loaded machine: wait for that by condition, up to 10 s.
  const end = Date.now() + 10_000
  for (;;) {
    const now = counts()
    leaked = watched.filter((k) => (now.get(k) ?? 0) > (baseline.get(k) ?? 0)).map((k) => `${k} x${(now.get(k) ?? 0) - (baseline.get(k) ?? 0)}`)
    if (leaked.length === 0) return
    if (Date.now() >= end) break
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`Test file left resources running: ${leaked.join(', ')}. Stop every worker, timer and server in afterAll.`)
})
