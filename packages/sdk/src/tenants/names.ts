// Tenant names and where a request names its tenant. A name becomes part of
// a schema name, the one identifier here written into SQL: it passes the
// pattern below first, and the mapping to a schema is one-to-one.
import { ConfigError, isIdent, ValidationError } from '@onepipe/core'

/** A tenant name: a DNS label in lower case, at most 30 characters (it must fit, prefixed, in a 63-character schema name). */
export const TENANT_NAME = /^[a-z0-9](?:[a-z0-9-]{0,28}[a-z0-9])?$/

/**
 * Checks a tenant name, answering it; a name that is not one is the
 * caller's to fix.
 *
 * @throws ValidationError `TENANT_INVALID` naming what is wrong
 */
export function checkTenantName(name: unknown, where = 'tenant'): string {
  if (typeof name !== 'string' || !TENANT_NAME.test(name)) {
    const shown = typeof name === 'string' ? JSON.stringify(name.slice(0, 80)) : String(name)
    throw new ValidationError(where, [{ path: where, message: `${shown} is not a tenant name: 1-30 lower-case letters, digits and "-", starting and ending with a letter or digit` }], { code: 'TENANT_INVALID' })
  }
  return name
}

/**
 * The schema a tenant's data lives in: `<base>__t_<name>` (or `t_<name>`
 * without a base schema), "-" written as "_". Tenant names hold no "_", so
 * two names never share a schema, and no name reaches the base schema.
 *
 * @throws ConfigError `TENANT_SCHEMA_TOO_LONG` when the base schema leaves no room for the name
 */
export function tenantSchema(base: string | undefined, name: string): string {
  const schema = `${base === undefined ? '' : `${base}__`}t_${name.replace(/-/g, '_')}`
  if (!isIdent(schema)) throw new ConfigError('TENANT_SCHEMA_TOO_LONG', `The schema of tenant "${name}" would be "${schema}", longer than PostgreSQL's 63 characters: shorten the database's schema name or the tenant's`)
  return schema
}

/** Where requests name their tenant. */
export interface TenantSource {
  /** The host's first label under this domain: `acme.api.example.com` under `api.example.com`. */
  domain?: string
  /** A request header holding the name (`X-Tenant`). */
  header?: string
}

/**
 * The tenant a request names: the header when configured and present, else
 * the host's label under the configured domain; undefined when it names none.
 *
 * @throws ValidationError `TENANT_INVALID` for a header or label that is not a tenant name (more labels than one, "..", quotes…)
 */
export function tenantOf(request: Request, source: TenantSource): string | undefined {
  if (source.header !== undefined) {
    const h = request.headers.get(source.header)
    if (h !== null) return checkTenantName(h, source.header.toLowerCase())
  }
  if (source.domain !== undefined) {
    const host = (request.headers.get('host') ?? new URL(request.url).host).toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '')
    const suffix = `.${source.domain}`
    if (!host.endsWith(suffix)) return undefined
    return checkTenantName(host.slice(0, -suffix.length), 'host')
  }
  return undefined
}

/** Checks the builder's domain: a host name under which each tenant has its label. */
export function checkDomain(domain: string): string {
  const d = typeof domain === 'string' ? domain.toLowerCase().replace(/^\.|\.$/g, '') : ''
  if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(d)) throw new ConfigError('TENANTS_BAD_DOMAIN', `Tenants domain ${JSON.stringify(domain)} is not a host name like "api.example.com"`)
  return d
}
