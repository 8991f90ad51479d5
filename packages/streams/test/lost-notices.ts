/**
 * The lost-notification check shared by the PostgreSQL and Redis stores:
 * two server processes on one backend; the one holding a live read reaches
 * the backend through a {@link GapProxy}. Its notification connection (the
 * LISTEN backend, or the pub/sub connection) is killed and its reconnect
 * held; an append through the other server lands in that gap, so its
 * notice is never heard. Once the reconnect goes through, the live reader
 * must get the append: the store re-checks after a reconnect, there is no
 * other way (no polling, and the server's live reads wait 10 minutes, far
 * beyond the test's deadlines).
 */
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { spawnNode, waitFor, type NodeProcess } from '@onepipe/testing'
import { GapProxy } from '../../core/test/gap-proxy.js'

const fixture = fileURLToPath(new URL('./fixtures/gap-server.mjs', import.meta.url))

export interface LostNoticeBackend {
  kind: 'redis' | 'postgres'
  /** The Redis prefix or PostgreSQL schema the servers share. */
  namespace: () => string
  /** The backend URL; the env of a server is built from it. */
  url: () => string
  env: (url: string) => Record<string, string>
  /** Kills the notification connection of the server process behind `proxy`; answers how many connections it killed. */
  kill: (server: NodeProcess, proxy: GapProxy) => Promise<number>
}

export function lostNoticeTests(b: LostNoticeBackend): void {
  const procs: NodeProcess[] = []
  let proxy: GapProxy
  let writer = ''
  let reader = ''
  let readerProc: NodeProcess
  beforeAll(async () => {
    proxy = await GapProxy.start(b.url())
    const start = async (url: string) => {
      const p = spawnNode(fixture, [b.kind, b.namespace()], b.env(url))
      procs.push(p)
      const line = await p.waitFor(/PORT=\d+/)
      return { p, base: `http://127.0.0.1:${line.slice(5)}` }
    }
    const [w, r] = await Promise.all([start(b.url()), start(proxy.url)])
    writer = w.base
    reader = r.base
    readerProc = r.p
  })
  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.exited))
    await proxy.close()
  })

  /** Creates the stream on the writer and answers its tail as the reader sees it. */
  async function create(path: string): Promise<string> {
    expect((await fetch(writer + path, { method: 'PUT', headers: { 'content-type': 'text/plain' } })).status).toBe(201)
    return (await fetch(reader + path, { method: 'HEAD' })).headers.get('stream-next-offset') ?? ''
  }

  /** Kills the reader's notification connection, holds its reconnect, appends through the writer, and lets the reconnect through. */
  async function appendInGap(path: string, body: string, heardBeforeRelease: () => boolean): Promise<void> {
    proxy.hold()
    try {
      expect(await b.kill(readerProc, proxy)).toBeGreaterThan(0)
      await waitFor(() => proxy.pending > 0, { what: "the reader's reconnect to reach the proxy" })
      const res = await fetch(writer + path, { method: 'POST', headers: { 'content-type': 'text/plain' }, body })
      expect(res.status).toBe(204)
      // Its notice went out while the reader had no notification connection.
      expect(heardBeforeRelease()).toBe(false)
    } finally {
      proxy.release()
    }
  }

  it('a long-poll waiting on the server whose notification connection was lost returns the append made in the gap, with its data', async () => {
    const path = `/v1/stream/gap/long-poll`
    const tail = await create(path)
    let answered = false
    const poll = fetch(`${reader}${path}?offset=${tail}&live=long-poll`).then((r) => {
      answered = true
      return r
    })
    // Handled here so that a broken run fails on the deadline below, not on an unhandled rejection at teardown.
    poll.catch(() => undefined)
    // Watching, and its first read found nothing: it now waits for a notice.
    await readerProc.waitFor(/READ gap\/long-poll 0/)
    await appendInGap(path, 'during-gap', () => answered)
    await waitFor(() => answered, { what: 'the long-poll to answer', timeoutMs: 60_000 })
    const res = await poll
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('during-gap')
  })

  it('an SSE reader on that server receives the append made in the gap while its connection stays open', async () => {
    const path = `/v1/stream/gap/sse`
    const tail = await create(path)
    const res = await fetch(`${reader}${path}?offset=${tail}&live=sse`)
    expect(res.status).toBe(200)
    const body = res.body!.getReader()
    const decoder = new TextDecoder()
    let text = ''
    let ended = false
    const reading = (async () => {
      try {
        for (;;) {
          const { done, value } = await body.read()
          if (done) break
          text += decoder.decode(value, { stream: true })
        }
      } finally {
        ended = true
      }
    })().catch(() => undefined)
    await waitFor(() => text.includes('"upToDate":true'), { what: 'the first control event' })
    await appendInGap(path, 'during-gap', () => text.includes('during-gap'))
    await waitFor(() => text.includes('event: data\ndata:during-gap\n'), { what: 'the data event of the append made in the gap', timeoutMs: 60_000 })
    expect(ended).toBe(false)
    await body.cancel()
    await reading
  })
}
