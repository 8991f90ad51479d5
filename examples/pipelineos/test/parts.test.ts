import { describe, expect, it } from 'vitest'
import { TerminalError, TransportError } from '@onepipe/sdk'
import { AnthropicProvider } from '../src/ai/anthropic.js'
import { LocalProvider, localFixtures } from '../src/ai/local.js'
import { providerFromEnv } from '../src/ai/provider.js'
import { Fixture } from '../src/contracts.js'
import { cleanFilename, sniffBlueprint } from '../src/files.js'
import { createMailer } from '../src/mail.js'
import { DEFAULT_PRICE_BOOK, priceFixtures } from '../src/pricing.js'
import { renderProposal } from '../src/proposal.js'

const png = (tail: string) => Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from(tail)])

describe('blueprint files', () => {
  it('are recognised by their first bytes, whatever their name', () => {
    expect(sniffBlueprint(Buffer.from('%PDF-1.7\n…'))).toBe('application/pdf')
    expect(sniffBlueprint(png('IHDR'))).toBe('image/png')
    expect(sniffBlueprint(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]))).toBe('image/jpeg')
    expect(sniffBlueprint(Buffer.from('GIF89a'))).toBeUndefined()
    expect(sniffBlueprint(Buffer.from('%PD'))).toBeUndefined()
    expect(sniffBlueprint(new Uint8Array())).toBeUndefined()
  })

  it('keep a file name without its path or control characters', () => {
    expect(cleanFilename('C:\\plans\\level 1.pdf')).toBe('level 1.pdf')
    expect(cleanFilename('../../etc/passwd')).toBe('passwd')
    expect(cleanFilename('a\u0000b\nc.png')).toBe('abc.png')
    expect(cleanFilename('   ')).toBe('blueprint')
    expect(cleanFilename('x'.repeat(300))).toHaveLength(200)
  })
})

describe('AI providers', () => {
  it('the local provider answers the same valid fixtures for the same bytes, others for other bytes', async () => {
    const p = new LocalProvider()
    const a = await p.analyzeBlueprint(png('plan A, level 1, with baths'), 'image/png')
    expect(await p.analyzeBlueprint(png('plan A, level 1, with baths'), 'image/png')).toEqual(a)
    expect(a.length).toBeGreaterThanOrEqual(2)
    expect(a.length).toBeLessThanOrEqual(5)
    for (const f of a) expect(Fixture.parse(f)).toEqual(f)
    expect(new Set(a.map((f) => f.kind)).size).toBe(a.length)
    expect(localFixtures(png('plan B'))).not.toEqual(a)
  })

  it('the local provider refuses, for good, a file too short to hold a drawing', async () => {
    await expect(new LocalProvider().analyzeBlueprint(png(''), 'image/png')).rejects.toMatchObject({ code: 'BLUEPRINT_UNREADABLE' })
    await expect(new LocalProvider().analyzeBlueprint(png(''), 'image/png')).rejects.toBeInstanceOf(TerminalError)
  })

  it('Anthropic is used only when ANTHROPIC_API_KEY is set', () => {
    expect(providerFromEnv({}).name).toBe('local')
    expect(providerFromEnv({ ANTHROPIC_API_KEY: 'k', ANTHROPIC_MODEL: 'm' }).name).toBe('anthropic:m')
  })

  // No request leaves the process: the provider is given a fetch that answers as the API would.
  const answering = (status: number, body: unknown) => {
    const calls: { url: string; init: RequestInit | undefined }[] = []
    const fake: typeof fetch = async (url, init) => {
      calls.push({ url: url instanceof Request ? url.url : url.toString(), init })
      return new Response(JSON.stringify(body), { status })
    }
    return { calls, provider: new AnthropicProvider({ apiKey: 'test-key', model: 'test-model', fetch: fake }) }
  }

  it('Anthropic: sends the PDF as a document and reads the fixtures of its JSON answer', async () => {
    const { calls, provider } = answering(200, { content: [{ type: 'text', text: 'Here:\n{"fixtures":[{"kind":"sink","quantity":2,"room":"Kitchen","confidencePct":88}]}' }] })
    expect(await provider.analyzeBlueprint(Buffer.from('%PDF-1.7 plan'), 'application/pdf')).toEqual([{ kind: 'sink', quantity: 2, room: 'Kitchen', confidencePct: 88 }])
    expect(calls[0]?.url).toBe('https://api.anthropic.com/v1/messages')
    const sent = JSON.parse(calls[0]?.init?.body as string) as { model: string; messages: { content: { type: string; source?: { media_type: string } }[] }[] }
    expect(sent.model).toBe('test-model')
    expect(sent.messages[0]?.content[0]).toMatchObject({ type: 'document', source: { media_type: 'application/pdf' } })
    expect((calls[0]?.init?.headers as Record<string, string>)['x-api-key']).toBe('test-key')
  })

  it('Anthropic: overloaded is worth retrying, a refusal is not, an answer off the format is retried', async () => {
    await expect(answering(529, { error: { type: 'overloaded_error' } }).provider.analyzeBlueprint(png('x'), 'image/png')).rejects.toBeInstanceOf(TransportError)
    await expect(answering(400, { error: { type: 'invalid_request_error' } }).provider.analyzeBlueprint(png('x'), 'image/png')).rejects.toBeInstanceOf(TerminalError)
    await expect(answering(200, { content: [{ type: 'text', text: '{"fixtures":[{"kind":"jacuzzi","quantity":1}]}' }] }).provider.analyzeBlueprint(png('x'), 'image/png')).rejects.toMatchObject({
      code: 'AI_BAD_ANSWER',
      retryable: true,
    })
  })
})

describe('the proposal', () => {
  const quote = priceFixtures(
    [
      { kind: 'toilet', quantity: 2 },
      { kind: 'shower', quantity: 1 },
    ],
    DEFAULT_PRICE_BOOK,
  )
  const data = { bidId: '7b0f3c1e-9d1a-4c55-8a53-5f1c2d3e4f50', issuedAt: '2026-01-02T03:04:05.000Z', lead: { name: 'Ada Builder', email: 'ada@example.com', company: 'Acme Homes' }, blueprint: { id: 'b1', filename: 'level-1.pdf' }, quote }

  it('is a PDF', async () => {
    const pdf = await renderProposal(data)
    expect(pdf.subarray(0, 5).toString('latin1')).toBe('%PDF-')
    expect(pdf.subarray(-6).toString('latin1')).toContain('%%EOF')
  })

  it('is e-mailed through nodemailer; without SMTP_URL the whole message is recorded, attachment included', async () => {
    const pdf = await renderProposal(data)
    const mailer = createMailer({ MAIL_FROM: 'Bids <bids@example.com>' })
    expect(mailer.transport).toBe('recorded')
    const sent = await mailer.send({ to: 'ada@example.com', subject: 'Your proposal', text: 'Attached.', messageId: '<bid-1@pipelineos>', attachments: [{ filename: 'proposal.pdf', content: pdf, contentType: 'application/pdf' }] })
    expect(sent).toMatchObject({ messageId: '<bid-1@pipelineos>', transport: 'recorded', response: null })
    expect(sent.raw).toContain('Subject: Your proposal')
    expect(sent.raw).toContain('To: ada@example.com')
    expect(sent.raw).toContain('Message-ID: <bid-1@pipelineos>')
    expect(sent.raw).toMatch(/Content-Type: application\/pdf; name=proposal\.pdf/)
  })
})
