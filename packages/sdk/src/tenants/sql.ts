// The tenant registry, `_onepipe_tenants` in the app's own schema
// (packages/core/sql/000017_tenants.sql). One SQL operation per function.
import type { Queryable } from '@onepipe/core'

/** Records a tenant (nothing when it is there already); answers its schema as stored. */
export async function registerTenant(q: Queryable, name: string, schema: string): Promise<string> {
  const [row] = await q.query<{ schema_name: string }>(
    `INSERT INTO _onepipe_tenants (name, schema_name) VALUES ($1, $2)
     ON CONFLICT (name) DO UPDATE SET name = excluded.name
     RETURNING schema_name`,
    [name, schema],
  )
  return row?.schema_name ?? schema
}

/** The tenant's schema, or undefined for a tenant never made. */
export async function tenantRow(q: Queryable, name: string): Promise<string | undefined> {
  const [row] = await q.query<{ schema_name: string }>('SELECT schema_name FROM _onepipe_tenants WHERE name = $1', [name])
  return row?.schema_name
}

/** Every tenant, oldest first. */
export async function allTenants(q: Queryable): Promise<{ name: string; schema: string; createdAt: Date }[]> {
  const rows = await q.query<{ name: string; schema_name: string; created_at: Date }>('SELECT name, schema_name, created_at FROM _onepipe_tenants ORDER BY created_at, name')
  return rows.map((r) => ({ name: r.name, schema: r.schema_name, createdAt: r.created_at }))
}
