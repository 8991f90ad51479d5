import { randomBytes } from 'node:crypto'
import { ConfigError, type Database } from '@onepipe/core'
import type { Account, ApiKeyInfo, Application, Auth } from '@onepipe/sdk'
import { Command, Option } from '@onepipe/streams/cli'
import { withDatabase } from './database.js'
import { printFields, printJson } from './output.js'

/** The roles an operator can give from the command line: the built-in ones (an app's own roles live in its code). */
export const CLI_ROLES = ['viewer', 'operator', 'admin'] as const

/**
 * Builds the app's Auth on `db` with the environment's signing key. Making
 * an account signs nothing, but an Auth without the app's key would accept
 * other tokens than the app's: the CLI asks for the same configuration the
 * app runs with instead of inventing a throwaway secret.
 *
 * @throws ConfigError `AUTH_SECRET_MISSING` naming ONEPIPE_AUTH_SECRET and ONEPIPE_AUTH_PRIVATE_KEY; the Auth's own key errors (`AUTH_SECRET_WEAK`…)
 *
 * @example
 * ```ts
 * const auth = await environmentAuth(db)
 * await auth.users.create({ email: 'ada@example.com', password: 'correct horse battery', roles: ['viewer'] })
 * ```
 */
export async function environmentAuth(db: Database): Promise<Auth> {
  if (!process.env.ONEPIPE_AUTH_SECRET && !process.env.ONEPIPE_AUTH_PRIVATE_KEY) {
    throw new ConfigError(
      'AUTH_SECRET_MISSING',
      "Set ONEPIPE_AUTH_SECRET (or ONEPIPE_AUTH_PRIVATE_KEY) to the app's signing key: users and keys commands use the app's Auth configuration",
      { variables: ['ONEPIPE_AUTH_SECRET', 'ONEPIPE_AUTH_PRIVATE_KEY'] },
    )
  }
  // Loaded here, not at the top: --help and the other commands need none of the SDK.
  const { Auth } = await import('@onepipe/sdk')
  return Auth.create('main').db(db).build()
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer))
  // `echo pw |` and here-strings end with a newline that is not part of the password.
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '')
}

/** What `onepipe users create` made; `password` only when the CLI generated it. */
export interface CreatedUser {
  user: Account
  password?: string
}

/**
 * Creates a person's account through the app's Auth: the password from
 * `password`, or a random one returned (shown once) when not given.
 *
 * @throws ValidationError for a bad email or password, ConflictError `EMAIL_TAKEN`, ConfigError `AUTH_SECRET_MISSING`
 *
 * @example
 * ```ts
 * const { user, password } = await createUser({ email: 'ada@example.com', role: 'operator' })
 * ```
 */
export async function createUser(o: { email: string; role: (typeof CLI_ROLES)[number]; password?: string }): Promise<CreatedUser> {
  const generated = o.password === undefined ? randomBytes(24).toString('base64url') : undefined
  return withDatabase(async (db) => {
    const auth = await environmentAuth(db)
    try {
      const user = await auth.users.create({ email: o.email, password: o.password ?? generated ?? '', roles: [o.role] })
      return generated === undefined ? { user } : { user, password: generated }
    } finally {
      await auth.close()
    }
  })
}

/** What `onepipe keys create` made: the key itself appears here and nowhere else. */
export interface CreatedKey {
  application: Application
  /** Whether the application was made now (no application had that name). */
  applicationCreated: boolean
  apiKey: ApiKeyInfo
  key: string
}

/**
 * Creates an API key for the application named `app`, making the
 * application first when none has that name (the oldest wins when several do).
 *
 * @throws ValidationError for a bad name or role, ConfigError `AUTH_SECRET_MISSING`
 *
 * @example
 * ```ts
 * const { key } = await createKey({ app: 'billing-worker', name: 'prod', roles: ['operator'] })
 * ```
 */
export async function createKey(o: { app: string; name: string; roles: string[] }): Promise<CreatedKey> {
  return withDatabase(async (db) => {
    const auth = await environmentAuth(db)
    try {
      const existing = (await auth.applications.list()).find((a) => a.name === o.app)
      const application = existing ?? (await auth.applications.create({ name: o.app }))
      const { key, apiKey } = await auth.apiKeys.create(application.id, { name: o.name, roles: o.roles })
      return { application, applicationCreated: existing === undefined, apiKey, key }
    } finally {
      await auth.close()
    }
  })
}

const AUTH_ENV = `
Needs the app's signing key in ONEPIPE_AUTH_SECRET (or ONEPIPE_AUTH_PRIVATE_KEY)
and its database: DATABASE_URL (schema ONEPIPE_DB_SCHEMA), else the embedded one
in ONEPIPE_DATA_DIR (default .onepipe); NODE_ENV=production requires DATABASE_URL.`

/**
 * Adds `users create` and `keys create` to a program.
 *
 * @example
 * ```ts
 * addAccountCommands(program)
 * await runProgram(program, ['users', 'create', '--email', 'ada@example.com', '--role', 'admin'])
 * ```
 */
export function addAccountCommands(program: Command): void {
  const users = program.command('users').description("people's accounts of the app's Auth")
  users
    .command('create')
    .description('create an account (email, password, one built-in role); without --password-stdin a random password is printed once')
    .addOption(new Option('--email <email>', 'the login email').makeOptionMandatory())
    .addOption(new Option('--role <role>', 'what the account may do').choices(CLI_ROLES).makeOptionMandatory())
    .addOption(new Option('--password-stdin', 'read the password (12 to 1024 characters) from stdin instead of generating one').default(false))
    .addOption(new Option('--json', 'print one JSON document: { user, password? }').default(false))
    .addHelpText('after', `${AUTH_ENV}

Examples:
  onepipe users create --email ada@example.com --role admin
  printf '%s' "$PASSWORD" | onepipe users create --email ops@example.com --role operator --password-stdin`)
    .action(async (flags: { email: string; role: (typeof CLI_ROLES)[number]; passwordStdin: boolean; json: boolean }) => {
      const password = flags.passwordStdin ? await readStdin() : undefined
      const r = await createUser({ email: flags.email, role: flags.role, ...(password !== undefined ? { password } : {}) })
      if (flags.json) return printJson(r)
      printFields([['user', r.user.email], ['id', r.user.id], ['roles', r.user.roles.join(', ')], ...(r.password !== undefined ? [['password', r.password] as const] : [])])
      if (r.password !== undefined) process.stdout.write('the password is shown this once: give it to its owner now\n')
    })

  const keys = program.command('keys').description("applications' API keys of the app's Auth")
  keys
    .command('create')
    .description('create an API key for an application (made when no application has that name); the key is printed once')
    .addOption(new Option('--app <name>', 'the application that sends the key').makeOptionMandatory())
    .addOption(new Option('--name <name>', 'a label of the key, e.g. prod or ci').default('cli'))
    .addOption(new Option('--role <role...>', 'roles of the key (none by default)').choices(CLI_ROLES).default([]))
    .addOption(new Option('--json', 'print one JSON document: { application, applicationCreated, apiKey, key }').default(false))
    .addHelpText('after', `${AUTH_ENV}

Examples:
  onepipe keys create --app billing-worker --role operator
  onepipe keys create --app dashboard-export --name ci --json`)
    .action(async (flags: { app: string; name: string; role: string[]; json: boolean }) => {
      const r = await createKey({ app: flags.app, name: flags.name, roles: flags.role })
      if (flags.json) return printJson(r)
      printFields([
        ['application', `${r.application.name} (${r.applicationCreated ? 'created now' : 'existing'})`],
        ['key id', r.apiKey.id],
        ['roles', r.apiKey.roles.join(', ')],
        ['key', r.key],
      ])
      process.stdout.write('the key is shown this once and stored nowhere: the program sends it as X-API-Key\n')
    })
}
