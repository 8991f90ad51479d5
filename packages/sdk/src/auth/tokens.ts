import { randomUUID } from 'node:crypto'
import { errors, jwtVerify, SignJWT, type JWTPayload } from 'jose'
import { AuthError } from './errors.js'
import type { SigningKeys } from './keys.js'

/** The claims of an access token (a JWT access token profile after RFC 9068). */
export interface AccessClaims {
  /** The user's id. */
  sub: string
  /** The session (refresh-token family) the token was issued in. */
  sid: string
  /** The roles the user had when the token was issued; the live ones are read at each request. */
  roles: string[]
  jti: string
  /** Seconds since the epoch. */
  iat: number
  exp: number
}

/** What to sign; `iat` and `jti` are given when the same pair must come out twice (a refresh answered again within the reuse interval). */
export interface AccessInput {
  sub: string
  sid: string
  roles: string[]
  iat?: number
  jti?: string
}

/** How far the clocks of the issuing and the verifying process may differ. */
export const CLOCK_TOLERANCE_SEC = 5
/** Verified tokens remembered, so a client sending the same token again costs a map lookup, not a signature check. */
const VERIFIED_MAX = 10_000

const TYP = 'at+jwt'

/**
 * Signs and verifies access tokens with one key and one algorithm. Verifying
 * names that algorithm alone, so `alg: none`, an HS256 token signed with a
 * public key (algorithm confusion) and any other algorithm are refused, as
 * RFC 8725 §3.1 asks; issuer, audience, `typ`, `exp` and `nbf` are checked
 * with {@link CLOCK_TOLERANCE_SEC} seconds of tolerance.
 *
 * @example
 * ```ts
 * const jwt = new AccessTokens(keys, { issuer: 'onepipe', audience: 'onepipe', ttlSec: 900 })
 * const token = await jwt.sign({ sub: user.id, sid, roles: ['viewer'] })
 * const claims = await jwt.verify(token) // throws AuthError TOKEN_EXPIRED | TOKEN_INVALID
 * ```
 */
export class AccessTokens {
  readonly #keys: SigningKeys
  readonly #o: { issuer: string; audience: string; ttlSec: number }
  readonly #verified = new Map<string, { claims: AccessClaims; untilMs: number }>()

  constructor(keys: SigningKeys, o: { issuer: string; audience: string; ttlSec: number }) {
    this.#keys = keys
    this.#o = o
  }

  get ttlSec(): number {
    return this.#o.ttlSec
  }

  async sign(i: AccessInput): Promise<{ token: string; claims: AccessClaims }> {
    const iat = i.iat ?? Math.floor(Date.now() / 1000)
    const claims: AccessClaims = { sub: i.sub, sid: i.sid, roles: i.roles, jti: i.jti ?? randomUUID(), iat, exp: iat + this.#o.ttlSec }
    const token = await new SignJWT({ sid: claims.sid, roles: claims.roles })
      .setProtectedHeader({ alg: this.#keys.alg, typ: TYP, ...(this.#keys.kid ? { kid: this.#keys.kid } : {}) })
      .setIssuer(this.#o.issuer)
      .setAudience(this.#o.audience)
      .setSubject(claims.sub)
      .setJti(claims.jti)
      .setIssuedAt(claims.iat)
      .setExpirationTime(claims.exp)
      .sign(this.#keys.sign)
    return { token, claims }
  }

  /** The claims of a token already verified and not expired; undefined otherwise (then {@link verify} it). */
  peek(token: string): AccessClaims | undefined {
    const hit = this.#verified.get(token)
    return hit && Date.now() < hit.untilMs ? hit.claims : undefined
  }

  /** @throws AuthError `TOKEN_EXPIRED`, `TOKEN_INVALID` */
  async verify(token: string): Promise<AccessClaims> {
    const now = Date.now()
    const hit = this.#verified.get(token)
    if (hit) {
      if (now < hit.untilMs) return hit.claims
      this.#verified.delete(token)
    }
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token, this.#keys.verify, {
        algorithms: [this.#keys.alg],
        issuer: this.#o.issuer,
        audience: this.#o.audience,
        typ: TYP,
        clockTolerance: CLOCK_TOLERANCE_SEC,
        requiredClaims: ['sub', 'sid', 'jti', 'iat', 'exp'],
      }))
    } catch (e) {
      throw tokenError(e)
    }
    const claims = claimsOf(payload)
    // Remembered by the exact token text, only once verified, only until it expires: a changed byte is another key.
    if (this.#verified.size >= VERIFIED_MAX) this.#verified.delete(this.#verified.keys().next().value as string)
    this.#verified.set(token, { claims, untilMs: (claims.exp + CLOCK_TOLERANCE_SEC) * 1000 })
    return claims
  }
}

function claimsOf(p: JWTPayload): AccessClaims {
  const roles = p.roles
  if (typeof p.sub !== 'string' || typeof p.sid !== 'string' || typeof p.jti !== 'string' || typeof p.iat !== 'number' || typeof p.exp !== 'number') {
    throw new AuthError('TOKEN_INVALID', 'The access token lacks a claim OnePipe needs; log in again')
  }
  if (!Array.isArray(roles) || roles.some((r) => typeof r !== 'string')) throw new AuthError('TOKEN_INVALID', 'The access token has no valid roles claim; log in again')
  return { sub: p.sub, sid: p.sid, roles: roles as string[], jti: p.jti, iat: p.iat, exp: p.exp }
}

/** A jose failure as the AuthError a client may act on; the token is never echoed. */
function tokenError(e: unknown): AuthError {
  if (e instanceof errors.JWTExpired) return new AuthError('TOKEN_EXPIRED', 'The access token has expired; refresh it or log in again')
  if (e instanceof errors.JWTClaimValidationFailed) {
    const why = e.claim === 'nbf' ? 'is not valid yet' : e.claim === 'iss' ? 'was issued by someone else' : e.claim === 'aud' ? 'is meant for another audience' : `has an unacceptable "${e.claim}" claim`
    return new AuthError('TOKEN_INVALID', `The access token ${why}; log in again`)
  }
  if (e instanceof errors.JOSEAlgNotAllowed) return new AuthError('TOKEN_INVALID', 'The access token is signed with an algorithm this server does not accept')
  if (e instanceof errors.JWSSignatureVerificationFailed) return new AuthError('TOKEN_INVALID', 'The access token signature is not valid')
  return new AuthError('TOKEN_INVALID', 'The access token is malformed or not valid')
}
