import { afterEach, describe, expect, it } from 'vitest'
import { ConfigError } from '@onepipe/core'
import { createLogger } from '@onepipe/runtime'

describe('createLogger', () => {
  const before = process.env.LOG_LEVEL
  afterEach(() => {
    if (before === undefined) delete process.env.LOG_LEVEL
    else process.env.LOG_LEVEL = before
  })

  it('refuses an unknown LOG_LEVEL with a ConfigError that lists the levels', () => {
    process.env.LOG_LEVEL = 'bogus'
    expect(() => createLogger()).toThrow(ConfigError)
    expect(() => createLogger()).toThrow(/LOG_LEVEL "bogus" is not a level; use one of fatal, error, warn, info, debug, trace, silent/)
  })

  it('takes every level pino knows, and info when LOG_LEVEL is empty', () => {
    for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) {
      process.env.LOG_LEVEL = level
      expect(createLogger().pino.level).toBe(level)
    }
    process.env.LOG_LEVEL = ''
    expect(createLogger().pino.level).toBe('info')
    process.env.LOG_LEVEL = 'DEBUG'
    expect(createLogger().pino.level).toBe('debug')
  })
})
