import { useInfiniteQuery } from '@tanstack/react-query'
import { useState, type FormEvent } from 'react'
import { accountKeys, accountsApi } from '../../api/accounts'
import type { Account } from '../../api/types'
import { useAction } from '../../components/action'
import { ConfirmButton } from '../../components/ConfirmButton'
import { CreateForm } from '../../components/CreateForm'
import { ErrorAlert } from '../../components/ErrorAlert'
import { Loaded, LoadMore } from '../../components/Loaded'
import { useRequired } from '../../components/required'
import { ROLES, RoleChecks } from '../../components/RoleChecks'
import { StatusBadge } from '../../components/Status'
import { Table, Td, TdTime } from '../../components/Table'
import { Button, Field, Input, PageTitle, Section } from '../../components/ui'

const PAGE = 100 // the route's default page

const same = (a: string[], b: string[]) => a.length === b.length && a.every((r) => b.includes(r))

/** A row's roles, changed on screen and saved at once (the API replaces the whole list). */
function RolesEditor({ user, saving, onSave }: { user: Account; saving: boolean; onSave: (roles: string[]) => void }) {
  const [roles, setRoles] = useState(user.roles)
  const options = [...ROLES, ...user.roles.filter((r) => !ROLES.includes(r))]
  const submit = (e: FormEvent) => {
    e.preventDefault()
    onSave(roles)
  }
  return (
    <form onSubmit={submit} className="flex flex-wrap items-center gap-3">
      <RoleChecks legend={`Roles of ${user.email}`} hideLegend options={options} value={roles} onChange={setRoles} testId="user-roles-edit" />
      <Button type="submit" disabled={saving || same(roles, user.roles)} data-testid="user-roles-save">
        Save
      </Button>
    </form>
  )
}

export function Users() {
  const q = useInfiniteQuery({
    queryKey: accountKeys.users,
    queryFn: ({ pageParam }) => accountsApi.users(PAGE, pageParam),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => (last.users.length >= PAGE ? last.users.at(-1)?.email : undefined),
  })
  const email = useRequired('Enter an email address')
  const [password, setPassword] = useState('')
  const [roles, setRoles] = useState<string[]>([])
  const invalidate = [accountKeys.users]
  const create = useAction(() => accountsApi.createUser(email.value.trim(), password, roles), {
    invalidate,
    onSuccess: () => {
      email.set('')
      setPassword('')
      setRoles([])
    },
  })
  const submit = () => {
    create.reset()
    if (email.check()) create.mutate(undefined)
  }
  const toggle = useAction((u: Account) => accountsApi.setUserDisabled(u.id, !u.disabled), { invalidate })
  const save = useAction((v: { id: string; roles: string[] }) => accountsApi.setUserRoles(v.id, v.roles), { invalidate })
  const users = q.data?.pages.flatMap((p) => p.users) ?? []
  return (
    <>
      <PageTitle>Users</PageTitle>
      <Section title="Create a user">
        <CreateForm testId="user-create" submit="Create user" pending={create.isPending} error={create.error} onSubmit={submit}>
          <Field label="Email" error={email.error} errorTestId="user-create-email-error">
            <Input type="email" autoComplete="off" value={email.value} onChange={(e) => email.set(e.target.value)} required data-testid="user-create-email" />
          </Field>
          <Field label="Password">
            <Input type="password" autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} required data-testid="user-create-password" />
          </Field>
          <RoleChecks legend="Roles" value={roles} onChange={setRoles} testId="user-role" />
        </CreateForm>
        {create.data && (
          <p role="status" className="mt-2 text-sm text-green-800" data-testid="user-created">
            Created {create.data.user.email}.
          </p>
        )}
      </Section>
      <Section title="Users">
        <ErrorAlert error={toggle.error ?? save.error} />
        <Loaded query={q}>
          <Table columns={['Email', 'Roles', 'State', 'Created', 'Last login', '']} empty="No users yet." caption="Users" testId="users-table">
            {users.map((u) => (
              <tr key={u.id} data-testid="user-row" data-id={u.id} data-email={u.email} data-roles={u.roles.join(' ')} data-disabled={String(u.disabled)}>
                <Td className="font-medium">{u.email}</Td>
                <Td>
                  {/* Keyed by the saved roles: a save or another admin's change starts the editor again from them. */}
                  <RolesEditor key={u.roles.join(' ')} user={u} saving={save.isPending} onSave={(r) => save.mutate({ id: u.id, roles: r })} />
                </Td>
                <Td>
                  <StatusBadge status={u.disabled ? 'disabled' : 'active'} />
                </Td>
                <TdTime at={u.createdAt} />
                <TdTime at={u.lastLoginAt} />
                <Td>
                  {u.disabled ? (
                    <Button onClick={() => toggle.mutate(u)} disabled={toggle.isPending} data-testid="user-enable">
                      Enable
                    </Button>
                  ) : (
                    <ConfirmButton question={`Disable ${u.email}?`} yes="Yes, disable" disabled={toggle.isPending} onConfirm={() => toggle.mutate(u)} testId="user-disable">
                      Disable
                    </ConfirmButton>
                  )}
                </Td>
              </tr>
            ))}
          </Table>
        </Loaded>
        <LoadMore query={q} testId="users-load-more" />
      </Section>
    </>
  )
}
