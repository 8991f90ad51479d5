// Tenants: schema-per-tenant storage, the tenant a request names, and each tenant's copy of Things and Semantic.
export { Tenant, Tenants, TenantsBuilder, defaultTenantAccess, type TenantAccess, type TenantTemplate } from './tenants.js'
export { TENANT_NAME, checkTenantName, tenantSchema, type TenantSource } from './names.js'
