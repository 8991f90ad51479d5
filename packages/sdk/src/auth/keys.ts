import { createHash, createPrivateKey, createPublicKey, createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto'
import { ConfigError, type Logger } from '@onepipe/core'

/** The JWS algorithms OnePipe signs access tokens with: one per Auth, never a list, so `alg` cannot be chosen by a token. */
export type SigningAlgorithm = 'HS256' | 'ES256' | 'EdDSA'

/** The secret's smallest size: 256 bits, the HS256 key size (RFC 7518 §3.2). */
export const MIN_SECRET_BYTES = 32

/**
 * Everything signed or MACed by one Auth, derived from one secret or one
 * private key. Sub-keys are separate (HKDF, RFC 5869, one `info` each), so a
 * value made for one purpose (a CSRF token) is never valid for another (a
 * refresh token's successor).
 */
export interface SigningKeys {
  alg: SigningAlgorithm
  sign: KeyObject
  verify: KeyObject
  /** The key id in the JWS header and the JWKS (RFC 7638 thumbprint); undefined for a shared secret. */
  kid: string | undefined
  /** The public key as a JWK, for `/.well-known/jwks.json`; undefined for a shared secret. */
  publicJwk: Record<string, unknown> | undefined
  /** HMAC key deriving a refresh token's successor from the token. */
  successor: Buffer
  /** HMAC key binding the CSRF token to the session. */
  csrf: Buffer
  /** Made up at build: tokens do not survive a restart and are not shared between instances. */
  ephemeral: boolean
}

function derive(ikm: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, 'onepipe-auth', info, 32))
}

/** A PEM from an environment variable: one line with `\n` escapes is allowed, as many hosts store it. */
function pemText(s: string): string {
  return s.includes('\\n') && !s.includes('\n') ? s.replace(/\\n/g, '\n') : s
}

function fromSecret(secret: string | Uint8Array, where: string, ephemeral: boolean): SigningKeys {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret)
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new ConfigError('AUTH_SECRET_WEAK', `${where} must be at least ${MIN_SECRET_BYTES} bytes (it has ${bytes.length}); make one with: openssl rand -base64 48`)
  }
  const key = createSecretKey(bytes)
  return { alg: 'HS256', sign: key, verify: key, kid: undefined, publicJwk: undefined, successor: derive(bytes, 'refresh-successor'), csrf: derive(bytes, 'csrf'), ephemeral }
}

function fromPrivateKey(pem: string, where: string): SigningKeys {
  let key: KeyObject
  try {
    key = createPrivateKey(pemText(pem))
  } catch {
    // The parser's message may quote the key; say only what is wrong.
    throw new ConfigError('AUTH_KEY_INVALID', `${where} is not a PEM private key; give a PKCS#8 P-256 (ES256) or Ed25519 (EdDSA) key, e.g. openssl genpkey -algorithm ed25519`)
  }
  const type = key.asymmetricKeyType
  const curve = key.asymmetricKeyDetails?.namedCurve
  let alg: SigningAlgorithm
  if (type === 'ed25519') alg = 'EdDSA'
  else if (type === 'ec' && (curve === 'prime256v1' || curve === 'P-256')) alg = 'ES256'
  else throw new ConfigError('AUTH_KEY_INVALID', `${where} is a ${type ?? 'unknown'}${curve ? ` (${curve})` : ''} key; OnePipe signs with P-256 (ES256) or Ed25519 (EdDSA) keys only`)
  const pub = createPublicKey(key)
  const jwk = pub.export({ format: 'jwk' }) as Record<string, unknown>
  const kid = thumbprint(jwk)
  const ikm = key.export({ format: 'der', type: 'pkcs8' })
  return {
    alg,
    sign: key,
    verify: pub,
    kid,
    publicJwk: { ...jwk, kid, alg, use: 'sig' },
    successor: derive(ikm, 'refresh-successor'),
    csrf: derive(ikm, 'csrf'),
    ephemeral: false,
  }
}

/** The JWK thumbprint (RFC 7638): SHA-256 over the required members in lexical order. */
function thumbprint(jwk: Record<string, unknown>): string {
  const members = jwk.kty === 'EC' ? ['crv', 'kty', 'x', 'y'] : ['crv', 'kty', 'x']
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]])))
  return createHash('sha256').update(canonical).digest('base64url')
}

/**
 * The signing keys of an Auth: what the builder was given, else
 * `ONEPIPE_AUTH_SECRET` or `ONEPIPE_AUTH_PRIVATE_KEY`. With none, production
 * (`NODE_ENV=production`) refuses to start; development makes an ephemeral
 * secret and warns. There is no default secret.
 *
 * @throws ConfigError `AUTH_SECRET_MISSING` (production, nothing given), `AUTH_SECRET_WEAK` (under 32 bytes),
 *   `AUTH_KEY_INVALID` (not a P-256/Ed25519 PEM), `AUTH_KEY_AMBIGUOUS` (both a secret and a private key)
 *
 * @example
 * ```ts
 * const keys = resolveKeys({ secret: undefined, privateKey: undefined }, 'main', logger)
 * ```
 */
export function resolveKeys(given: { secret: string | Uint8Array | undefined; privateKey: string | undefined }, name: string, logger: Logger, env: NodeJS.ProcessEnv = process.env): SigningKeys {
  if (given.secret !== undefined && given.privateKey !== undefined) {
    throw new ConfigError('AUTH_KEY_AMBIGUOUS', `Auth "${name}" was given both .secret() and .privateKey(); give one (a token is verified with exactly one algorithm)`)
  }
  if (given.secret !== undefined) return fromSecret(given.secret, `Auth "${name}" .secret()`, false)
  if (given.privateKey !== undefined) return fromPrivateKey(given.privateKey, `Auth "${name}" .privateKey()`)
  const envSecret = env.ONEPIPE_AUTH_SECRET
  const envKey = env.ONEPIPE_AUTH_PRIVATE_KEY
  if (envSecret && envKey) throw new ConfigError('AUTH_KEY_AMBIGUOUS', 'Both ONEPIPE_AUTH_SECRET and ONEPIPE_AUTH_PRIVATE_KEY are set; set one (a token is verified with exactly one algorithm)')
  if (envSecret) return fromSecret(envSecret, 'ONEPIPE_AUTH_SECRET', false)
  if (envKey) return fromPrivateKey(envKey, 'ONEPIPE_AUTH_PRIVATE_KEY')
  if (env.NODE_ENV === 'production') {
    throw new ConfigError(
      'AUTH_SECRET_MISSING',
      `Auth "${name}" has no signing key: set ONEPIPE_AUTH_SECRET (at least ${MIN_SECRET_BYTES} bytes, e.g. openssl rand -base64 48) or ONEPIPE_AUTH_PRIVATE_KEY (a P-256 or Ed25519 PEM), or pass .secret()/.privateKey(). NODE_ENV=production never makes one up.`,
      { variables: ['ONEPIPE_AUTH_SECRET', 'ONEPIPE_AUTH_PRIVATE_KEY'] },
    )
  }
  logger.warn(
    { auth: name },
    'auth: no ONEPIPE_AUTH_SECRET or ONEPIPE_AUTH_PRIVATE_KEY; using an ephemeral secret for development (tokens die with this process and other instances reject them). Production refuses to start without one.',
  )
  return fromSecret(randomBytes(MIN_SECRET_BYTES), 'an ephemeral secret', true)
}
