import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { TerminalError } from '@onepipe/sdk'
import { FIXTURE_KINDS } from '../src/contracts.js'
import { DEFAULT_PRICE_BOOK, formatBps, formatCents, mulDivRound, priceFixtures, type PriceBook } from '../src/pricing.js'

const book = (over: Partial<PriceBook> = {}): PriceBook => ({ ...DEFAULT_PRICE_BOOK, ...over })

describe('pricing engine', () => {
  it('prices two toilets: materials, labour by the hour, markup then tax, each rounded to the cent', () => {
    const q = priceFixtures([{ kind: 'toilet', quantity: 2 }], DEFAULT_PRICE_BOOK)
    expect(q.lines).toEqual([{ kind: 'toilet', quantity: 2, unitCents: 28_900, materialsCents: 57_800, labourMinutes: 240, labourCents: 38_000, lineCents: 95_800 }])
    expect(q).toMatchObject({ currency: 'USD', materialsCents: 57_800, labourCents: 38_000, subtotalCents: 95_800, markupCents: 14_370 })
    // 8.25 % of 110 170 is 9 089.025: rounded to 9 089.
    expect(q.taxCents).toBe(9_089)
    expect(q.totalCents).toBe(95_800 + 14_370 + 9_089)
  })

  it('adds up quantities of one kind into one line, lines in the price book order', () => {
    const q = priceFixtures(
      [
        { kind: 'hose_bib', quantity: 1 },
        { kind: 'sink', quantity: 2 },
        { kind: 'sink', quantity: 3 },
      ],
      DEFAULT_PRICE_BOOK,
    )
    expect(q.lines.map((l) => [l.kind, l.quantity])).toEqual([
      ['sink', 5],
      ['hose_bib', 1],
    ])
  })

  it('rounds half up, exactly: labour per line, markup and tax once on the totals', () => {
    expect(mulDivRound(1, 1, 2)).toBe(1)
    expect(mulDivRound(1, 1, 3)).toBe(0)
    expect(mulDivRound(2, 1, 3)).toBe(1)
    expect(mulDivRound(5, 825, 10_000)).toBe(0) // 0.4125
    expect(mulDivRound(7, 825, 10_000)).toBe(1) // 0.5775
    // 30 min at 99.99 an hour is 49.995: 50.00; 45 min is 74.9925: 74.99.
    const q = priceFixtures(
      [
        { kind: 'hose_bib', quantity: 1 },
        { kind: 'washing_machine', quantity: 1 },
      ],
      book({ labourCentsPerHour: 9_999, markupBps: 0, taxBps: 0 }),
    )
    expect(q.lines.map((l) => l.labourCents)).toEqual([7_499, 5_000])
    // 8.25 % of 12.22 is 1.00815: 1.01.
    expect(priceFixtures([{ kind: 'hose_bib', quantity: 1 }], book({ fixtures: { ...DEFAULT_PRICE_BOOK.fixtures, hose_bib: { unitCents: 1_222, labourMinutes: 0 } }, markupBps: 0 })).taxCents).toBe(101)
  })

  it('an empty list is a quote of zero', () => {
    expect(priceFixtures([], DEFAULT_PRICE_BOOK)).toMatchObject({ lines: [], subtotalCents: 0, markupCents: 0, taxCents: 0, totalCents: 0 })
  })

  it('refuses, for good, a kind it cannot price and a quantity that is not a whole number from 1', () => {
    const fail = (f: { kind: string; quantity: number }) => {
      try {
        priceFixtures([f], DEFAULT_PRICE_BOOK)
      } catch (e) {
        return e
      }
      throw new Error('priced')
    }
    expect(fail({ kind: 'jacuzzi', quantity: 1 })).toMatchObject({ code: 'UNKNOWN_FIXTURE' })
    expect(fail({ kind: 'toString', quantity: 1 })).toMatchObject({ code: 'UNKNOWN_FIXTURE' })
    for (const quantity of [0, -1, 1.5, Number.NaN, 2_000_000]) expect(fail({ kind: 'sink', quantity })).toMatchObject({ code: 'BAD_QUANTITY' })
    expect(fail({ kind: 'sink', quantity: 0 })).toBeInstanceOf(TerminalError)
    expect(() => priceFixtures([], book({ taxBps: -1 }))).toThrow(/taxBps/)
  })

  it('stays exact where floating point would not: a million water heaters', () => {
    const q = priceFixtures([{ kind: 'water_heater', quantity: 1_000_000 }], DEFAULT_PRICE_BOOK)
    expect(q.materialsCents).toBe(124_999_000_000)
    expect(q.labourCents).toBe(38_000_000_000)
    expect(q.subtotalCents).toBe(162_999_000_000)
    expect(q.markupCents).toBe(24_449_850_000)
    expect(q.taxCents).toBe(mulDivRound(162_999_000_000 + 24_449_850_000, 825, 10_000))
    expect(Number.isSafeInteger(q.totalCents)).toBe(true)
  })

  it('every quote adds up: lines to subtotal, subtotal + markup + tax to total, all whole cents', () => {
    const fixture = fc.record({ kind: fc.constantFrom(...FIXTURE_KINDS), quantity: fc.integer({ min: 1, max: 10_000 }) })
    fc.assert(
      fc.property(fc.array(fixture, { maxLength: 30 }), fc.integer({ min: 0, max: 5_000 }), fc.integer({ min: 0, max: 2_500 }), (fixtures, markupBps, taxBps) => {
        const q = priceFixtures(fixtures, book({ markupBps, taxBps }))
        const ints = [q.materialsCents, q.labourCents, q.subtotalCents, q.markupCents, q.taxCents, q.totalCents, ...q.lines.flatMap((l) => [l.materialsCents, l.labourCents, l.lineCents])]
        expect(ints.every((n) => Number.isSafeInteger(n) && n >= 0)).toBe(true)
        expect(q.lines.reduce((s, l) => s + l.lineCents, 0)).toBe(q.subtotalCents)
        expect(q.subtotalCents + q.markupCents + q.taxCents).toBe(q.totalCents)
        expect(q.lines.reduce((s, l) => s + l.quantity, 0)).toBe(fixtures.reduce((s, f) => s + f.quantity, 0))
      }),
      { numRuns: 200 },
    )
  })

  it('formats cents and rates for people from the integers', () => {
    expect(formatCents(123_456, 'USD')).toBe('USD 1,234.56')
    expect(formatCents(5, 'USD')).toBe('USD 0.05')
    expect(formatCents(0, 'EUR')).toBe('EUR 0.00')
    expect(formatCents(-150, 'USD')).toBe('-USD 1.50')
    expect(formatCents(100_000_000_00, 'USD')).toBe('USD 100,000,000.00')
    expect(formatBps(825)).toBe('8.25 %')
    expect(formatBps(1_500)).toBe('15 %')
    expect(formatBps(1_250)).toBe('12.5 %')
  })
})
