-- Tenants (docs/tenants.md): one row per tenant of the app, kept in the app's
-- own schema. Each tenant's data lives in its own schema (schema_name),
-- created and migrated when the tenant is first used; every process reads
-- this table to run the tenant's handlers, so a tenant made by one instance
-- is served by all.
CREATE TABLE _onepipe_tenants (
  name text PRIMARY KEY,
  schema_name text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);
