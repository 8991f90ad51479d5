// The pricing engine: fixtures in, a quote out. Pure (no I/O, no clock), so
// the bid workflow can call it in a step and tests can call it directly.
// Every amount is a whole number of cents and every rounding is explicit:
// products are taken exactly with BigInt and rounded half up once, so a
// quote never depends on binary floating point.
import { TerminalError } from '@onepipe/sdk'
import { FIXTURE_KINDS, type FixtureKind } from './contracts.js'

/** What one kind of fixture costs: the part, and the minutes it takes to fit. */
export interface FixturePrice {
  unitCents: number
  labourMinutes: number
}

/** Prices and rates a quote is computed with. */
export interface PriceBook {
  currency: string
  fixtures: Record<FixtureKind, FixturePrice>
  labourCentsPerHour: number
  /** Markup on materials and labour, in basis points (1500 = 15 %). */
  markupBps: number
  /** Sales tax on the marked-up subtotal, in basis points (825 = 8.25 %). */
  taxBps: number
}

/** One line of a quote: one kind of fixture, all its quantities together. */
export interface QuoteLine {
  kind: FixtureKind
  quantity: number
  unitCents: number
  materialsCents: number
  labourMinutes: number
  labourCents: number
  lineCents: number
}

/** A priced bid. */
export interface Quote {
  currency: string
  lines: QuoteLine[]
  materialsCents: number
  labourCents: number
  subtotalCents: number
  markupBps: number
  markupCents: number
  taxBps: number
  taxCents: number
  totalCents: number
}

/** The price book the example ships: plumbing fixtures at plausible US prices. */
export const DEFAULT_PRICE_BOOK: PriceBook = {
  currency: 'USD',
  fixtures: {
    toilet: { unitCents: 28_900, labourMinutes: 120 },
    urinal: { unitCents: 41_500, labourMinutes: 150 },
    sink: { unitCents: 18_450, labourMinutes: 90 },
    shower: { unitCents: 62_000, labourMinutes: 240 },
    bathtub: { unitCents: 89_900, labourMinutes: 300 },
    water_heater: { unitCents: 124_999, labourMinutes: 240 },
    dishwasher: { unitCents: 4_500, labourMinutes: 60 },
    washing_machine: { unitCents: 4_500, labourMinutes: 45 },
    floor_drain: { unitCents: 7_325, labourMinutes: 75 },
    hose_bib: { unitCents: 2_199, labourMinutes: 30 },
  },
  labourCentsPerHour: 9_500,
  markupBps: 1_500,
  taxBps: 825,
}

// Bounds that keep every stored amount an exact JavaScript number and a valid bigint column.
const MAX_QUANTITY = 1_000_000
const MAX_CENTS = 1_000_000_000
const MAX_BPS = 100_000

/**
 * `a × b / d` rounded half up, exactly, for non-negative whole numbers.
 *
 * @throws RangeError when an argument is not a non-negative safe integer, `d` is 0, or the result is not a safe integer
 * @example
 * ```ts
 * mulDivRound(1999, 825, 10_000) // 165 (164.9175 rounds to 165)
 * ```
 */
export function mulDivRound(a: number, b: number, d: number): number {
  for (const n of [a, b, d]) if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`mulDivRound: ${n} is not a non-negative safe integer`)
  if (d === 0) throw new RangeError('mulDivRound: division by zero')
  const D = BigInt(d)
  const r = (BigInt(a) * BigInt(b) * 2n + D) / (2n * D)
  if (r > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`mulDivRound: ${a} × ${b} / ${d} is past the safe integers`)
  return Number(r)
}

function checkInt(value: number, max: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0 || value > max) throw new TerminalError('PRICE_BOOK_INVALID', `${what} must be a whole number from 0 to ${max}, not ${value}`)
}

/**
 * Prices fixtures with a price book: one line per kind (quantities of the
 * same kind added up), in the price book's order; materials are quantity ×
 * unit price, labour is quantity × minutes × hourly rate / 60 rounded to the
 * cent per line; the markup and then the tax are rounded once on the totals.
 *
 * @throws TerminalError `UNKNOWN_FIXTURE` for a kind the price book does not price,
 *   `BAD_QUANTITY` for a quantity that is not a whole number from 1 to 1,000,000,
 *   `PRICE_BOOK_INVALID` for a price, rate or percentage outside its bounds
 * @example
 * ```ts
 * const quote = priceFixtures([{ kind: 'toilet', quantity: 2 }], DEFAULT_PRICE_BOOK)
 * quote.totalCents // 103 613
 * ```
 */
export function priceFixtures(fixtures: readonly { kind: string; quantity: number }[], book: PriceBook): Quote {
  checkInt(book.labourCentsPerHour, MAX_CENTS, 'labourCentsPerHour')
  checkInt(book.markupBps, MAX_BPS, 'markupBps')
  checkInt(book.taxBps, MAX_BPS, 'taxBps')
  const quantities = new Map<FixtureKind, number>()
  for (const f of fixtures) {
    if (!(FIXTURE_KINDS as readonly string[]).includes(f.kind) || !Object.hasOwn(book.fixtures, f.kind)) {
      throw new TerminalError('UNKNOWN_FIXTURE', `The price book has no price for fixture "${f.kind}"`)
    }
    if (!Number.isSafeInteger(f.quantity) || f.quantity < 1 || f.quantity > MAX_QUANTITY) {
      throw new TerminalError('BAD_QUANTITY', `The quantity of "${f.kind}" must be a whole number from 1 to ${MAX_QUANTITY}, not ${f.quantity}`)
    }
    const kind = f.kind as FixtureKind
    quantities.set(kind, (quantities.get(kind) ?? 0) + f.quantity)
  }
  const lines: QuoteLine[] = []
  for (const kind of FIXTURE_KINDS) {
    const quantity = quantities.get(kind)
    if (quantity === undefined) continue
    const p = book.fixtures[kind]
    checkInt(p.unitCents, MAX_CENTS, `the unit price of ${kind}`)
    checkInt(p.labourMinutes, 100_000, `the labour minutes of ${kind}`)
    const materialsCents = mulDivRound(quantity, p.unitCents, 1)
    const labourMinutes = mulDivRound(quantity, p.labourMinutes, 1)
    const labourCents = mulDivRound(labourMinutes, book.labourCentsPerHour, 60)
    lines.push({ kind, quantity, unitCents: p.unitCents, materialsCents, labourMinutes, labourCents, lineCents: materialsCents + labourCents })
  }
  const materialsCents = lines.reduce((s, l) => s + l.materialsCents, 0)
  const labourCents = lines.reduce((s, l) => s + l.labourCents, 0)
  const subtotalCents = materialsCents + labourCents
  const markupCents = mulDivRound(subtotalCents, book.markupBps, 10_000)
  const taxCents = mulDivRound(subtotalCents + markupCents, book.taxBps, 10_000)
  const totalCents = subtotalCents + markupCents + taxCents
  if (!Number.isSafeInteger(totalCents)) throw new TerminalError('QUOTE_TOO_LARGE', 'The quote is past what this engine counts exactly')
  return { currency: book.currency, lines, materialsCents, labourCents, subtotalCents, markupBps: book.markupBps, markupCents, taxBps: book.taxBps, taxCents, totalCents }
}

/**
 * Cents as a money amount for people, with thousands separators, computed
 * from the integer (no float division).
 *
 * @example
 * ```ts
 * formatCents(123456, 'USD') // "USD 1,234.56"
 * ```
 */
export function formatCents(cents: number, currency: string): string {
  if (!Number.isSafeInteger(cents)) throw new RangeError(`formatCents: ${cents} is not a whole number of cents`)
  const sign = cents < 0 ? '-' : ''
  const abs = Math.abs(cents)
  const units = Math.trunc(abs / 100)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ',')
  return `${sign}${currency} ${units}.${String(abs % 100).padStart(2, '0')}`
}

/**
 * A basis-point rate as a percentage for people.
 *
 * @example
 * ```ts
 * formatBps(825) // "8.25 %"
 * ```
 */
export function formatBps(bps: number): string {
  const whole = Math.trunc(bps / 100)
  const frac = String(bps % 100).padStart(2, '0').replace(/0+$/, '')
  return `${whole}${frac ? `.${frac}` : ''} %`
}
