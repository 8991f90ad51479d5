import { randomUUID } from 'node:crypto'
import { ConflictError, NotFoundError, REST, Workflow, type Auth, type Database, type Queryable, type RateLimit } from '@onepipe/sdk'
import { z } from 'zod'
import { IdParams, NewBid, NewLead, PERMISSIONS, type Fixture } from './contracts.js'
import { asBuffer } from './files.js'
import type { Mailer } from './mail.js'
import { formatCents, priceFixtures, type PriceBook, type Quote } from './pricing.js'
import { renderProposal } from './proposal.js'

/** What the bid workflow reads once, at its first step. */
interface BidFacts {
  bidId: string
  createdAt: string
  lead: { id: string; name: string; email: string; company: string | null }
  blueprint: { id: string; filename: string }
  fixtures: Pick<Fixture, 'kind' | 'quantity'>[]
}

async function loadFacts(q: Queryable, bidId: string): Promise<BidFacts> {
  const [row] = await q.query<{ created_at: Date; lead_id: string; name: string; email: string; company: string | null; blueprint_id: string; filename: string }>(
    `SELECT b.created_at, l.id AS lead_id, l.name, l.email, l.company, p.id AS blueprint_id, p.filename
     FROM bids b JOIN leads l ON l.id = b.lead_id JOIN blueprints p ON p.id = b.blueprint_id WHERE b.id = $1`,
    [bidId],
  )
  if (!row) throw new NotFoundError('BID_NOT_FOUND', `No bid ${bidId}`)
  const fixtures = await q.query<{ kind: Fixture['kind']; quantity: number }>('SELECT kind, quantity FROM blueprint_fixtures WHERE blueprint_id = $1 ORDER BY position', [row.blueprint_id])
  return {
    bidId,
    createdAt: new Date(row.created_at).toISOString(),
    lead: { id: row.lead_id, name: row.name, email: row.email, company: row.company },
    blueprint: { id: row.blueprint_id, filename: row.filename },
    fixtures,
  }
}

/** The bid workflow's output. */
export interface BidOutcome {
  bidId: string
  totalCents: number
  messageId: string
}

/**
 * Prices a bid, renders its proposal, e-mails it and records the response,
 * durably: a crash resumes at the step it was in, and the workflow id is the
 * bid id, so one bid is worked once however often it is requested. The two
 * writes that must happen once (the quote, the response) are `ctx.transaction`
 * steps; the PDF write is idempotent; the e-mail carries a message id derived
 * from the bid, so a send repeated after a crash is recognisable as the same message.
 *
 * @example
 * ```ts
 * const bid = createBidWorkflow(db, { mailer, book: DEFAULT_PRICE_BOOK })
 * await bid.start({ bidId }, { workflowId: bidId })
 * ```
 */
export function createBidWorkflow(db: Database, o: { mailer: Mailer; book: PriceBook }) {
  return Workflow.create('bid')
    .input(z.object({ bidId: z.uuid() }))
    .db(db)
    .timeout('1h')
    .retry({ attempts: 5, backoff: 'exponential', delay: '1s', maxDelay: '1m' })
    .define(async (ctx, { bidId }): Promise<BidOutcome> => {
      const facts = await ctx.step('load', () => loadFacts(ctx.db, bidId))
      const quote = await ctx.transaction('price', async (tx): Promise<Quote> => {
        const q = priceFixtures(facts.fixtures, o.book)
        await tx.execute("UPDATE bids SET status = 'priced', quote = $2::text::jsonb, total_cents = $3, currency = $4, updated_at = now() WHERE id = $1", [bidId, JSON.stringify(q), q.totalCents, q.currency])
        return q
      })
      await ctx.step('render-pdf', async () => {
        const pdf = await renderProposal({ bidId, issuedAt: facts.createdAt, lead: facts.lead, blueprint: facts.blueprint, quote })
        await ctx.db.execute("UPDATE bids SET pdf = $2::bytea, status = 'rendered', updated_at = now() WHERE id = $1 AND status <> 'sent'", [bidId, pdf])
        return { bytes: pdf.byteLength }
      })
      const subject = `Plumbing proposal for ${facts.blueprint.filename}: ${formatCents(quote.totalCents, quote.currency)}`
      const sent = await ctx.step('email', async () => {
        const [row] = await ctx.db.query<{ pdf: Uint8Array | null }>('SELECT pdf FROM bids WHERE id = $1', [bidId])
        if (!row?.pdf) throw new Error(`The proposal of bid ${bidId} is not rendered`)
        return o.mailer.send({
          to: facts.lead.email,
          subject,
          text: `Hello ${facts.lead.name},\n\nPlease find attached our proposal for ${facts.blueprint.filename}: ${formatCents(quote.totalCents, quote.currency)} in all.\n\nPipelineOS`,
          messageId: `<bid-${bidId}@pipelineos>`,
          attachments: [{ filename: `proposal-${bidId}.pdf`, content: asBuffer(row.pdf), contentType: 'application/pdf' }],
        })
      })
      await ctx.transaction('record-response', async (tx) => {
        await tx.execute(
          `INSERT INTO responses (id, bid_id, lead_id, channel, recipient, subject, message_id, transport, raw_message)
           VALUES ($1, $2, $3, 'email', $4, $5, $6, $7, $8)`,
          [randomUUID(), bidId, facts.lead.id, facts.lead.email, subject, sent.messageId, sent.transport, sent.raw],
        )
        await tx.execute("UPDATE bids SET status = 'sent', sent_at = now(), updated_at = now() WHERE id = $1", [bidId])
      })
      return { bidId, totalCents: quote.totalCents, messageId: sent.messageId }
    })
    .build()
}

/** The bid workflow, as built by {@link createBidWorkflow}. */
export type BidWorkflow = ReturnType<typeof createBidWorkflow>

interface BidRow {
  id: string
  blueprint_id: string
  lead_id: string
  status: string
  quote: Quote | null
  total_cents: number | null
  currency: string | null
  has_pdf: boolean
  requested_by: string
  created_at: Date
  updated_at: Date
  sent_at: Date | null
}

/** A bid as the API answers it, with its workflow run's status and the response sent. */
async function loadBid(q: Queryable, workflow: BidWorkflow, id: string) {
  const [row] = await q.query<BidRow>(
    'SELECT id, blueprint_id, lead_id, status, quote, total_cents, currency, pdf IS NOT NULL AS has_pdf, requested_by, created_at, updated_at, sent_at FROM bids WHERE id = $1',
    [id],
  )
  if (!row) throw new NotFoundError('BID_NOT_FOUND', `No bid ${id}`)
  const run = await workflow.get(id)
  const responses = await q.query<{ channel: string; recipient: string; subject: string; message_id: string; transport: string; sent_at: Date }>(
    'SELECT channel, recipient, subject, message_id, transport, sent_at FROM responses WHERE bid_id = $1 ORDER BY sent_at',
    [id],
  )
  return {
    id: row.id,
    blueprintId: row.blueprint_id,
    leadId: row.lead_id,
    status: row.status,
    quote: row.quote,
    totalCents: row.total_cents,
    currency: row.currency,
    requestedBy: row.requested_by,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    sentAt: row.sent_at,
    run: run ? { status: run.status, error: run.error ? { code: run.error.code, message: run.error.message } : null } : null,
    responses: responses.map((r) => ({ channel: r.channel, recipient: r.recipient, subject: r.subject, messageId: r.message_id, transport: r.transport, sentAt: r.sent_at })),
    links: { self: `/api/bids/${row.id}`, pdf: row.has_pdf ? `/api/bids/${row.id}/pdf` : null, run: `/__onepipe/workflows/runs/${row.id}` },
  }
}

/**
 * Leads and bids under `/api`: add and read leads, request a bid for an
 * analysed blueprint (idempotent: one bid per blueprint and lead), read a
 * bid and download its proposal.
 *
 * @example
 * ```ts
 * const api = createBidsApi(db, { auth, workflow })
 * ```
 */
export function createBidsApi(db: Database, d: { auth: Auth; workflow: BidWorkflow; rateLimit?: RateLimit }) {
  const b = REST.create('bids').basePath('/api').db(db).auth(d.auth)
  if (d.rateLimit) b.rateLimit(d.rateLimit)
  return b
    .post('/leads', { body: NewLead, permission: PERMISSIONS.write, status: 201, summary: 'Add a lead' }, async (ctx) => {
      const l = await ctx.body()
      const id = randomUUID()
      const [row] = await ctx.db.query('INSERT INTO leads (id, name, email, company, phone, created_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, name, email, company, phone, created_at', [
        id,
        l.name,
        l.email,
        l.company ?? null,
        l.phone ?? null,
        ctx.user?.email ?? ctx.user?.id ?? 'unknown',
      ])
      return ctx.created(row, `/api/leads/${id}`)
    })
    .get('/leads/:id', { params: IdParams, permission: PERMISSIONS.read, summary: 'A lead' }, async (ctx) => {
      const [row] = await ctx.db.query('SELECT id, name, email, company, phone, created_at FROM leads WHERE id = $1', [ctx.params.id])
      if (!row) throw new NotFoundError('LEAD_NOT_FOUND', `No lead ${ctx.params.id}`)
      return row
    })
    .post('/blueprints/:id/bids', { params: IdParams, body: NewBid, permission: PERMISSIONS.write, status: 201, summary: 'Request a bid for an analysed blueprint (one per blueprint and lead; asking again answers the same bid)' }, async (ctx) => {
      const { leadId } = await ctx.body()
      const blueprintId = ctx.params.id
      const [bp] = await ctx.db.query<{ status: string }>('SELECT status FROM blueprints WHERE id = $1', [blueprintId])
      if (!bp) throw new NotFoundError('BLUEPRINT_NOT_FOUND', `No blueprint ${blueprintId}`)
      if (bp.status !== 'analyzed') throw new ConflictError('BLUEPRINT_NOT_ANALYZED', `Blueprint ${blueprintId} is ${bp.status}; a bid needs its fixtures, so ask again once it is analyzed`)
      const [lead] = await ctx.db.query('SELECT 1 AS ok FROM leads WHERE id = $1', [leadId])
      if (!lead) throw new NotFoundError('LEAD_NOT_FOUND', `No lead ${leadId}`)
      const [inserted] = await ctx.db.query<{ id: string }>('INSERT INTO bids (id, blueprint_id, lead_id, requested_by) VALUES ($1, $2, $3, $4) ON CONFLICT (blueprint_id, lead_id) DO NOTHING RETURNING id', [
        randomUUID(),
        blueprintId,
        leadId,
        ctx.user?.email ?? ctx.user?.id ?? 'unknown',
      ])
      const [existing] = inserted ? [inserted] : await ctx.db.query<{ id: string }>('SELECT id FROM bids WHERE blueprint_id = $1 AND lead_id = $2', [blueprintId, leadId])
      if (!existing) throw new ConflictError('BID_CONFLICT', `The bid for blueprint ${blueprintId} and lead ${leadId} changed meanwhile; ask again`)
      // Started on every request, not only the first: the run's id is the bid's, so this is a no-op once it
      // exists, and it starts the run a request cut off between the insert and the start left without one.
      await d.workflow.start({ bidId: existing.id }, { workflowId: existing.id })
      const bid = await loadBid(ctx.db, d.workflow, existing.id)
      return inserted ? ctx.created(bid, `/api/bids/${existing.id}`) : ctx.json(bid, 200)
    })
    .get('/bids/:id', { params: IdParams, permission: PERMISSIONS.read, summary: 'A bid: its quote, status, run and the response sent' }, async (ctx) => loadBid(ctx.db, d.workflow, ctx.params.id))
    .get('/bids/:id/pdf', { params: IdParams, permission: PERMISSIONS.read, summary: "The bid's proposal (application/pdf)" }, async (ctx) => {
      const [row] = await ctx.db.query<{ pdf: Uint8Array | null }>('SELECT pdf FROM bids WHERE id = $1', [ctx.params.id])
      if (!row) throw new NotFoundError('BID_NOT_FOUND', `No bid ${ctx.params.id}`)
      if (!row.pdf) throw new ConflictError('PROPOSAL_NOT_READY', `The proposal of bid ${ctx.params.id} is not rendered yet`)
      const pdf = asBuffer(row.pdf)
      return new Response(pdf, {
        headers: { 'content-type': 'application/pdf', 'content-length': String(pdf.byteLength), 'content-disposition': `inline; filename="proposal-${ctx.params.id}.pdf"`, 'x-request-id': ctx.requestId },
      })
    })
    .build()
}
