import PDFDocument from 'pdfkit'
import { formatBps, formatCents, type Quote } from './pricing.js'

/** What a proposal shows: who it is for, which blueprint, the quote. */
export interface ProposalData {
  bidId: string
  /** ISO 8601; the document's date (and its PDF creation date, so a re-render is the same document). */
  issuedAt: string
  lead: { name: string; email: string; company: string | null }
  blueprint: { id: string; filename: string }
  quote: Quote
}

const LABELS: Record<string, string> = {
  toilet: 'Toilet',
  urinal: 'Urinal',
  sink: 'Sink',
  shower: 'Shower',
  bathtub: 'Bathtub',
  water_heater: 'Water heater',
  dishwasher: 'Dishwasher hook-up',
  washing_machine: 'Washing machine hook-up',
  floor_drain: 'Floor drain',
  hose_bib: 'Hose bib',
}

/**
 * The proposal as a PDF (US Letter, one table of fixtures and the totals),
 * rendered in memory with pdfkit's built-in Helvetica.
 *
 * @example
 * ```ts
 * const pdf = await renderProposal({ bidId, issuedAt, lead, blueprint, quote })
 * pdf.subarray(0, 5).toString() // '%PDF-'
 * ```
 */
export function renderProposal(p: ProposalData): Promise<Buffer> {
  const issued = new Date(p.issuedAt)
  const doc = new PDFDocument({ size: 'LETTER', margin: 54, info: { Title: `Proposal ${p.bidId}`, Author: 'PipelineOS', CreationDate: issued } })
  const chunks: Buffer[] = []
  const done = new Promise<Buffer>((resolve, reject) => {
    doc.on('data', (c: Buffer) => chunks.push(c))
    doc.on('end', () => resolve(Buffer.concat(chunks)))
    doc.on('error', reject)
  })
  const money = (c: number) => formatCents(c, p.quote.currency)
  doc.font('Helvetica-Bold').fontSize(20).text('Plumbing proposal')
  doc.moveDown(0.3).font('Helvetica').fontSize(10).fillColor('#555')
  doc.text(`Proposal ${p.bidId}`).text(`Issued ${issued.toISOString().slice(0, 10)}; valid for 30 days`)
  doc.moveDown().fillColor('#000').fontSize(11)
  doc.font('Helvetica-Bold').text('Prepared for')
  doc.font('Helvetica').text(p.lead.name)
  if (p.lead.company) doc.text(p.lead.company)
  doc.text(p.lead.email)
  doc.moveDown().font('Helvetica-Bold').text('Blueprint')
  doc.font('Helvetica').text(`${p.blueprint.filename} (${p.blueprint.id})`)
  doc.moveDown()

  // The table: fixed columns, one row per fixture kind.
  const cols = [
    { title: 'Fixture', x: 54, w: 170, align: 'left' as const },
    { title: 'Qty', x: 224, w: 40, align: 'right' as const },
    { title: 'Unit', x: 268, w: 80, align: 'right' as const },
    { title: 'Materials', x: 352, w: 80, align: 'right' as const },
    { title: 'Labour', x: 436, w: 80, align: 'right' as const },
  ]
  const row = (cells: string[], bold = false) => {
    const y = doc.y
    doc.font(bold ? 'Helvetica-Bold' : 'Helvetica').fontSize(10)
    cells.forEach((text, i) => {
      const c = cols[i]
      if (c) doc.text(text, c.x, y, { width: c.w, align: c.align })
    })
    doc.x = 54
    doc.moveDown(0.4)
  }
  row(
    cols.map((c) => c.title),
    true,
  )
  for (const l of p.quote.lines) row([LABELS[l.kind] ?? l.kind, String(l.quantity), money(l.unitCents), money(l.materialsCents), money(l.labourCents)])
  doc.moveDown()
  const total = (label: string, cents: number, bold = false) => {
    const y = doc.y
    doc.font(bold ? 'Helvetica-Bold' : 'Helvetica').fontSize(bold ? 12 : 10)
    doc.text(label, 268, y, { width: 164, align: 'right' })
    doc.text(money(cents), 436, y, { width: 80, align: 'right' })
    doc.x = 54
    doc.moveDown(0.3)
  }
  total('Materials', p.quote.materialsCents)
  total('Labour', p.quote.labourCents)
  total(`Overhead and profit (${formatBps(p.quote.markupBps)})`, p.quote.markupCents)
  total(`Sales tax (${formatBps(p.quote.taxBps)})`, p.quote.taxCents)
  total('Total', p.quote.totalCents, true)
  doc.moveDown(2).font('Helvetica').fontSize(9).fillColor('#555')
  doc.text('Quantities come from an automated reading of the blueprint and are confirmed on site before work starts.', 54, doc.y, { width: 462 })
  doc.end()
  return done
}
