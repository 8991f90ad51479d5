import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeValue, encodeValue, MAX_VALUE_BYTES, PayloadTooLargeError, serializeError, ValidationError, valueIssues } from '@onepipe/core'

const subject = 'test value'

describe('the value rule: round-trips exactly or is refused naming the path', () => {
  const refused: [string, unknown, string][] = [
    ['NaN', { x: NaN }, 'x'],
    ['Infinity', { y: Infinity }, 'y'],
    ['-Infinity', [1, -Infinity], '1'],
    ['-0', { z: -0 }, 'z'],
    ['a function', () => 1, ''],
    ['a symbol', Symbol('s'), ''],
    ['a BigInt', { n: 10n }, 'n'],
    ['a Date', { confirmedAt: new Date() }, 'confirmedAt'],
    ['a Map', { m: new Map() }, 'm'],
    ['a lone surrogate', { s: 'x\ud800y' }, 's'],
    ['a lone surrogate in a key', { ['k\udc00']: 1 }, 'k\udc00'],
    ['a NUL', ['a\u0000b'], '0'],
    ['undefined at the top', undefined, ''],
    ['undefined in an array', [1, undefined], '1'],
     
    ['a sparse array', [1, , 3], '1'],
    ['an object with toJSON', { v: { toJSON: () => 1 } }, 'v'],
  ]
  for (const [name, value, path] of refused) {
    it(`refuses ${name} with a ValidationError naming "${path || '(root)'}"`, () => {
      let err: unknown
      try {
        encodeValue(value, { subject })
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(ValidationError)
      expect((err as ValidationError).issues[0]?.path).toBe(path)
      expect((err as ValidationError).retryable).toBe(false)
      expect((err as ValidationError).status).toBe(400)
    })
  }

  it('refuses a cycle and a value nested too deep', () => {
    const a: Record<string, unknown> = { b: {} }
    ;(a.b as Record<string, unknown>).a = a
    expect(valueIssues(a)[0]).toMatchObject({ path: 'b.a', message: expect.stringMatching(/cycle/) as string })
    let deep: unknown = 1
    for (let i = 0; i < 1000; i++) deep = [deep]
    expect(valueIssues(deep)[0]?.message).toMatch(/deeper than 128/)
  })

  it('names every failing path (up to ten), not just the first', () => {
    expect(valueIssues({ a: NaN, b: [1n], c: 'ok', d: { e: () => 1 } }).map((i) => i.path)).toEqual(['a', 'b.0', 'd.e'])
  })

  it('keeps what JSON holds exactly, and the same object twice (not a cycle)', () => {
    const shared = { k: 1 }
    const v = { s: 'héllo 😀', n: -1.5e300, t: true, z: null, a: [0, [], {}], shared, again: shared, nul: Object.assign(Object.create(null) as object, { x: 1 }) }
    expect(decodeValue(encodeValue(v, { subject }))).toEqual(v)
  })

  it('leaves undefined properties out, as JSON does', () => {
    expect(decodeValue(encodeValue({ a: 1, b: undefined }, { subject }))).toEqual({ a: 1 })
  })

  it('a result of undefined (a function that returns nothing) is allowed where asked, and reads back undefined', () => {
    expect(encodeValue(undefined, { subject, allowUndefined: true })).toBeUndefined()
    expect(decodeValue(null)).toBeUndefined()
    expect(decodeValue(encodeValue(null, { subject }))).toBeNull()
  })

  it('refuses more than the byte limit with a PayloadTooLargeError (413), counting UTF-8 bytes', () => {
    expect(() => encodeValue('x'.repeat(MAX_VALUE_BYTES), { subject })).toThrow(PayloadTooLargeError)
    expect(() => encodeValue('é'.repeat(600), { subject, maxBytes: 1000 })).toThrow(PayloadTooLargeError)
    expect(encodeValue('e'.repeat(600), { subject, maxBytes: 1000 })).toHaveLength(602)
  })

  it('a value the app produced is refused with its own code and status', () => {
    expect(() => encodeValue(NaN, { subject: 'result of step "s"', code: 'INVALID_RESULT', status: 500 })).toThrow(expect.objectContaining({ code: 'INVALID_RESULT', status: 500 }) as Error)
  })

  it('fuzz: any value either reads back equal or is refused with a ValidationError', () => {
    const anything = fc.anything({
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withObjectString: true,
      withSparseArray: true,
      withTypedArray: true,
      withUnicodeString: true,
      maxDepth: 4,
    })
    const special = fc.constantFrom<unknown>(NaN, Infinity, -Infinity, -0, 'x\ud800', '\udc00y', 'a\u0000b', () => 1, Symbol('s'), 1n)
    const value = fc.oneof(anything, special, fc.array(fc.oneof(anything, special)), fc.dictionary(fc.string({ unit: 'binary' }), fc.oneof(anything, special)))
    fc.assert(
      fc.property(value, (v) => {
        let text: string
        try {
          text = encodeValue(v, { subject })
        } catch (e) {
          expect(e).toBeInstanceOf(ValidationError)
          return
        }
        expect(decodeValue(text)).toEqual(v)
      }),
      { numRuns: 2000 },
    )
  })
})

describe('serializeError keeps what was thrown', () => {
  it('a thrown plain object keeps code, message and its other fields', () => {
    expect(serializeError({ code: 'CARD_DECLINED', reason: 'expired', amount: 12 })).toEqual({
      name: 'Error',
      code: 'CARD_DECLINED',
      message: 'expired',
      status: 500,
      retryable: true,
      details: { reason: 'expired', amount: 12 },
    })
  })

  it('an object without a prototype is recorded, not a crash', () => {
    const o = Object.assign(Object.create(null) as object, { code: 'X', message: 'no proto' })
    expect(serializeError(o)).toMatchObject({ code: 'X', message: 'no proto' })
  })

  it('an Error keeps its code and own fields; strings that cannot be stored are escaped', () => {
    const e = Object.assign(new Error('bad \u0000 byte \ud800'), { code: 'ECONNRESET', host: 'db', when: new Date(0), n: NaN })
    const s = serializeError(e)
    expect(s).toMatchObject({ name: 'Error', code: 'ECONNRESET', message: 'bad \\u0000 byte \\ud800', details: { host: 'db', when: '1970-01-01T00:00:00.000Z', n: 'NaN' } })
    expect(() => encodeValue(s, { subject })).not.toThrow()
  })

  it('fuzz: whatever is thrown, the record is storable', () => {
    fc.assert(
      fc.property(fc.anything({ withBigInt: true, withDate: true, withMap: true, withNullPrototype: true, withUnicodeString: true, maxDepth: 3 }), fc.string({ unit: 'binary' }), (v, msg) => {
        for (const thrown of [v, new Error(msg), { code: msg, message: msg, v }]) expect(() => encodeValue(serializeError(thrown), { subject })).not.toThrow()
      }),
      { numRuns: 500 },
    )
  })
})
