import { randomBytes } from 'node:crypto'
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { collectText, waitFor } from '@onepipe/testing'
import { localFixtures } from '../src/ai/local.js'
import { MAX_BLUEPRINT_BYTES } from '../src/contracts.js'
import { png, startPipelineOS, type BlueprintView, type Harness } from './harness.js'

interface ApiError {
  error: { code: string; message: string; requestId: string }
}
interface BidView {
  id: string
  status: string
  totalCents: number | null
  quote: { totalCents: number; lines: { kind: string }[] } | null
  run: { status: string; error: unknown } | null
  responses: { channel: string; recipient: string; transport: string; messageId: string }[]
}

describe('PipelineOS: the app and its worker as real processes on PostgreSQL', () => {
  let h: Harness

  beforeAll(async () => {
    h = await startPipelineOS()
    await h.startWorker()
  })

  afterAll(async () => {
    // Both stop cleanly on SIGTERM: the worker hands back what it holds, the app drains and runs its hooks.
    for (const p of (await h?.close()) ?? []) expect(p.code, `${p.name}: ${p.output.slice(-2000)}`).toBe(0)
  })

  const analysed = (id: string) =>
    waitFor(
      async () => {
        const b = await h.json<BlueprintView>(`/api/blueprints/${id}`, { as: 'viewer' })
        return (b.status === 'analyzed' || b.status === 'failed') && b
      },
      { timeoutMs: 30_000, intervalMs: 100, what: `blueprint ${id} to be analysed` },
    )

  it('an upload is analysed by the worker, followed live; a bid prices it, renders the PDF and records the e-mail, once', async () => {
    const bytes = png(`blueprint of level 1, ${randomBytes(8).toString('hex')}`)
    const res = await h.upload(bytes, 'level-1.png', 'estimator')
    expect(res.status).toBe(201)
    const created = (await res.json()) as BlueprintView
    expect(created).toMatchObject({ status: 'pending', mime: 'image/png', filename: 'level-1.png', sizeBytes: bytes.byteLength, fixtures: [] })
    expect(res.headers.get('location')).toBe(`/api/blueprints/${created.id}`)

    // Live, no polling: the blueprint's own event stream announces each status.
    const live = collectText(await h.call(`/api/blueprints/${created.id}/events`, { as: 'estimator' }))
    try {
      await waitFor(() => live.text().includes('"status":"analyzed"'), { timeoutMs: 30_000, what: 'the analyzed event on the live stream' })
      const statuses = [...live.text().matchAll(/"status":"(\w+)"/g)].map((m) => m[1])
      expect(statuses).toEqual(['pending', 'analyzing', 'analyzed'])
    } finally {
      await live.stop()
    }
    const done = await h.json<BlueprintView>(`/api/blueprints/${created.id}`, { as: 'viewer' })
    expect(done).toMatchObject({ status: 'analyzed', provider: 'local', error: null })
    expect(done.fixtures).toEqual(localFixtures(bytes))

    const lead = await h.post<{ id: string }>('/api/leads', { name: 'Ada Builder', email: 'ada@example.com', company: 'Acme Homes' }, 'estimator')
    const bid = await h.post<BidView>(`/api/blueprints/${created.id}/bids`, { leadId: lead.id }, 'estimator')
    // Asking again answers the same bid (200), and starts nothing new.
    const again = await h.post<BidView>(`/api/blueprints/${created.id}/bids`, { leadId: lead.id }, 'estimator', 200)
    expect(again.id).toBe(bid.id)
    const sent = await waitFor(
      async () => {
        const b = await h.json<BidView>(`/api/bids/${bid.id}`, { as: 'viewer' })
        if (b.run?.status === 'failed') throw new Error(`the bid run failed: ${JSON.stringify(b.run.error)}`)
        return b.status === 'sent' && b
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'the bid to be sent' },
    )
    expect(sent.run).toEqual({ status: 'completed', error: null })
    expect(sent.quote?.lines.map((l) => l.kind).sort()).toEqual(done.fixtures.map((f) => f.kind).sort())
    expect(sent.totalCents).toBe(sent.quote?.totalCents)
    expect(sent.responses).toEqual([expect.objectContaining({ channel: 'email', recipient: 'ada@example.com', transport: 'recorded', messageId: `<bid-${bid.id}@pipelineos>` })])

    const pdf = await h.call(`/api/bids/${bid.id}/pdf`, { as: 'viewer' })
    expect(pdf.status).toBe(200)
    expect(pdf.headers.get('content-type')).toBe('application/pdf')
    expect(Buffer.from(await pdf.arrayBuffer()).subarray(0, 5).toString('latin1')).toBe('%PDF-')

    // The e-mail was recorded whole (no SMTP_URL), the proposal attached, once.
    const rows = await h.db.query<{ raw_message: string }>('SELECT raw_message FROM responses WHERE bid_id = $1', [bid.id])
    expect(rows).toHaveLength(1)
    expect(rows[0]?.raw_message).toContain('To: ada@example.com')
    expect(rows[0]?.raw_message).toContain(`filename=proposal-${bid.id}.pdf`)
  })

  it('a file the provider cannot read ends the blueprint failed, with the error recorded', async () => {
    const res = await h.upload(png(''), 'blank.png', 'estimator')
    expect(res.status).toBe(201)
    const b = await analysed(((await res.json()) as BlueprintView).id)
    expect(b).toMatchObject({ status: 'failed', error: { code: 'BLUEPRINT_UNREADABLE' }, fixtures: [] })
    // A bid needs fixtures.
    const lead = await h.post<{ id: string }>('/api/leads', { name: 'Bo', email: 'bo@example.com' }, 'estimator')
    expect(await h.post<ApiError>(`/api/blueprints/${b.id}/bids`, { leadId: lead.id }, 'estimator', 409)).toMatchObject({ error: { code: 'BLUEPRINT_NOT_ANALYZED' } })
  })

  it('refuses bad input and callers without the right, with a typed JSON error, storing nothing', async () => {
    const count = async () => (await h.db.query<{ n: number }>('SELECT count(*)::int8 AS n FROM blueprints'))[0]?.n
    const before = await count()
    const expectError = async (res: Response, status: number, code: string) => {
      expect(res.status).toBe(status)
      expect(res.headers.get('content-type')).toMatch(/application\/json/)
      expect(((await res.json()) as ApiError).error).toMatchObject({ code, requestId: expect.any(String) })
    }
    await expectError(await h.upload(png('anonymous plan'), 'a.png'), 401, 'UNAUTHORIZED')
    await expectError(await h.upload(Buffer.from('GIF89a, not a blueprint'), 'plan.pdf', 'estimator'), 400, 'UNSUPPORTED_FILE_TYPE')
    await expectError(await h.upload(png('a viewer may only read'), 'v.png', 'viewer'), 403, 'FORBIDDEN')
    await expectError(await h.call('/api/blueprints', { method: 'POST', as: 'estimator', body: new FormData() }), 400, 'VALIDATION_FAILED')
    await expectError(await h.call('/api/blueprints/7f1e8a2c-0000-4000-8000-000000000000', { as: 'viewer' }), 404, 'BLUEPRINT_NOT_FOUND')
    await expectError(await h.call('/api/blueprints/not-an-id', { as: 'viewer' }), 400, 'VALIDATION_FAILED')
    await expectError(await h.call('/api/leads', { method: 'POST', as: 'viewer', headers: { 'content-type': 'application/json' }, body: '{"name":"x","email":"x@example.com"}' }), 403, 'FORBIDDEN')
    await expectError(await h.call('/api/leads', { method: 'POST', as: 'estimator', headers: { 'content-type': 'application/json' }, body: '{"name":"x","email":"not an address"}' }), 400, 'VALIDATION_FAILED')

    // Over 50 MB: refused from the declared length, before a byte of the body is read.
    const tooLarge = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${h.base}/api/blueprints`, {
        method: 'POST',
        headers: { authorization: `Bearer ${h.tokens.estimator}`, 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(MAX_BLUEPRINT_BYTES + 1) },
      })
      req.on('response', (r) => {
        let body = ''
        r.on('data', (c: Buffer) => (body += c.toString()))
        r.on('end', () => {
          resolve({ status: r.statusCode ?? 0, body })
          req.destroy()
        })
      })
      req.on('error', reject)
      req.flushHeaders()
    })
    expect(tooLarge.status).toBe(413)
    expect(JSON.parse(tooLarge.body)).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } })

    // Only the workers' application reports analyses: not a person, not another application's key.
    const { application: other } = await h.post<{ application: { id: string } }>('/__onepipe/auth/applications', { name: 'someone-else' }, 'admin')
    const { key } = await h.post<{ key: string }>(`/__onepipe/auth/applications/${other.id}/keys`, { name: 'other' }, 'admin')
    const report = { status: 'analyzing', pipelineId: '7f1e8a2c-0000-4000-8000-000000000000', attempt: 1 }
    const bp = '7f1e8a2c-0000-4000-8000-000000000001'
    await expectError(await h.call(`/api/blueprints/${bp}/analysis`, { method: 'POST', headers: { 'x-api-key': key, 'content-type': 'application/json' }, body: JSON.stringify(report) }), 403, 'FORBIDDEN')
    await expectError(await h.call(`/api/blueprints/${bp}/analysis`, { method: 'POST', as: 'admin', headers: { 'content-type': 'application/json' }, body: JSON.stringify(report) }), 403, 'FORBIDDEN')
    await expectError(await h.call(`/api/blueprints/${bp}/file`, { headers: { 'x-api-key': key } }), 403, 'FORBIDDEN')
    expect(await count()).toBe(before)
  })
})
