import { ConfigError, ValidationError } from '@onepipe/core'
import type { AuthUser } from '../rest/auth.js'

/**
 * OnePipe's own permissions: reading (`GET`), acting (`POST`, `PUT`, `PATCH`, `DELETE`), managing accounts and keys.
 *
 * @example
 * ```ts
 * if (can(ctx.user, ONEPIPE_PERMISSIONS.write)) … // 'onepipe:write'
 * ```
 */
export const ONEPIPE_PERMISSIONS = { read: 'onepipe:read', write: 'onepipe:write', admin: 'onepipe:admin' } as const

/**
 * The built-in roles. `admin` ⊇ `operator` ⊇ `viewer`; `admin` also holds
 * every permission of every role an app declares (it can grant itself any
 * role anyway, so withholding one would only be a formality).
 *
 * @example
 * ```ts
 * BUILTIN_ROLES.operator // ['onepipe:write', 'onepipe:read']
 * ```
 */
export const BUILTIN_ROLES: Readonly<Record<'admin' | 'operator' | 'viewer', readonly string[]>> = {
  admin: [ONEPIPE_PERMISSIONS.admin, ONEPIPE_PERMISSIONS.write, ONEPIPE_PERMISSIONS.read],
  operator: [ONEPIPE_PERMISSIONS.write, ONEPIPE_PERMISSIONS.read],
  viewer: [ONEPIPE_PERMISSIONS.read],
}

const NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/

/** Whether `held` includes `wanted` in the built-in hierarchy (a role includes itself). */
function includesRole(held: string, wanted: string): boolean {
  if (held === wanted || held === 'admin') return true
  return held === 'operator' && wanted === 'viewer'
}

/**
 * The roles an Auth knows and the permissions each grants: the built-in
 * three plus the app's own (`.roles({ billing: ['invoices:read'] })`). An
 * app may also add permissions to a built-in role (`operator:
 * ['invoices:write']`), which the roles above it inherit.
 *
 * @example
 * ```ts
 * const map = new RoleMap({ billing: ['invoices:read'] })
 * map.permissionsOf(['billing', 'viewer']) // ['invoices:read', 'onepipe:read']
 * ```
 */
export class RoleMap {
  readonly #own = new Map<string, Set<string>>()

  /** @throws ConfigError `INVALID_ROLE` for a role or permission name that is not `letters, digits, _ . : -` (1-64) */
  constructor(extra: Record<string, readonly string[]> = {}) {
    for (const [role, perms] of Object.entries(BUILTIN_ROLES)) this.#own.set(role, new Set(perms))
    for (const [role, perms] of Object.entries(extra)) {
      if (!NAME.test(role)) throw new ConfigError('INVALID_ROLE', `Role name "${role}" is invalid: use letters, digits, "_", ".", ":" or "-" (up to 64), starting with a letter`)
      if (!Array.isArray(perms)) throw new ConfigError('INVALID_ROLE', `Role "${role}" needs a list of permission names`)
      const set = this.#own.get(role) ?? new Set<string>()
      for (const p of perms) {
        if (typeof p !== 'string' || !NAME.test(p)) throw new ConfigError('INVALID_ROLE', `Permission "${String(p)}" of role "${role}" is invalid: use letters, digits, "_", ".", ":" or "-" (up to 64)`)
        set.add(p)
      }
      this.#own.set(role, set)
    }
    // Inheritance after every role is known: operator gets viewer's, admin everybody's.
    for (const p of this.#own.get('viewer') ?? []) this.#own.get('operator')?.add(p)
    const admin = this.#own.get('admin')
    for (const set of this.#own.values()) for (const p of set) admin?.add(p)
  }

  /** Every role name, built-in first. */
  names(): string[] {
    return [...this.#own.keys()]
  }

  /** Whether `role` is known. */
  has(role: string): boolean {
    return this.#own.has(role)
  }

  /** The union of the permissions of `roles`, sorted; unknown roles grant nothing. */
  permissionsOf(roles: readonly string[]): string[] {
    const out = new Set<string>()
    for (const r of roles) for (const p of this.#own.get(r) ?? []) out.add(p)
    return [...out].sort()
  }

  /**
   * Checks a list of role names given by a caller (an admin setting a
   * user's roles, a new API key): every one must be known, no duplicates.
   *
   * @throws ValidationError naming `path` for an unknown role
   */
  check(roles: unknown, path = 'roles'): string[] {
    if (!Array.isArray(roles) || roles.some((r) => typeof r !== 'string')) throw new ValidationError('roles', [{ path, message: 'must be a list of role names' }])
    const unknown = (roles as string[]).filter((r) => !this.#own.has(r))
    if (unknown.length > 0) throw new ValidationError('roles', [{ path, message: `unknown role(s): ${unknown.join(', ')}; known: ${this.names().join(', ')}` }])
    return [...new Set(roles as string[])]
  }
}

const builtin = new RoleMap()

/**
 * Whether `user` holds `role`, with the built-in hierarchy: `admin` holds
 * every role, `operator` holds `viewer`.
 *
 * @example
 * ```ts
 * hasRole({ id: 'u1', roles: ['admin'] }, 'viewer') // true
 * hasRole({ id: 'u2', roles: ['viewer'] }, 'operator') // false
 * ```
 */
export function hasRole(user: AuthUser | null | undefined, role: string): boolean {
  return user?.roles?.some((held) => includesRole(held, role)) ?? false
}

/**
 * Whether `user` may do what `permission` names. The user's `permissions`
 * decide (an `Auth` fills them from its roles); a user from a plain
 * `AuthProvider` without them is judged by the built-in roles. With
 * `resource.applicationId`, an application's key is also refused
 * everything that belongs to another application (a key sees only its
 * application's data); people are not limited by it.
 *
 * @example
 * ```ts
 * .get('/invoices/:appId', async (ctx) => {
 *   if (!can(ctx.user, 'invoices:read', { applicationId: ctx.params.appId })) return ctx.forbidden()
 *   …
 * })
 * ```
 */
export function can(user: AuthUser | null | undefined, permission: string, resource: { applicationId?: string } = {}): boolean {
  if (!user) return false
  if (resource.applicationId !== undefined && user.kind === 'application' && user.applicationId !== resource.applicationId) return false
  const perms = Array.isArray(user.permissions) ? (user.permissions as unknown[]) : builtin.permissionsOf(user.roles ?? [])
  return perms.includes(permission)
}
