import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'

/** One Ed25519 signing key for webhook notifications, published as a JWKS. */
export class WebhookSigner {
  readonly kid: string
  readonly #privateKey: KeyObject
  readonly #jwk: Record<string, unknown>

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519')
    const jwk = publicKey.export({ format: 'jwk' }) as { kty: string; crv: string; x: string }
    this.kid = `ds_${createHash('sha256').update(jwk.x).digest('base64url').slice(0, 16)}`
    this.#privateKey = privateKey
    this.#jwk = { ...jwk, kid: this.kid, alg: 'EdDSA', use: 'sig' }
  }

  /** The `webhook-signature` header for a body: `t=<unix s>,kid=<kid>,ed25519=<base64url sig of "t.body">`. */
  signature(body: string, now = Date.now()): string {
    const t = Math.floor(now / 1000)
    const sig = sign(null, Buffer.from(`${t}.${body}`), this.#privateKey).toString('base64url')
    return `t=${t},kid=${this.kid},ed25519=${sig}`
  }

  /** The JWKS document receivers verify signatures with. */
  jwks(): { keys: Record<string, unknown>[] } {
    return { keys: [this.#jwk] }
  }
}
