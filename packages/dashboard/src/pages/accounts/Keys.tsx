import { useQuery } from '@tanstack/react-query'
import { useState } from 'react'
import { accountKeys, accountsApi } from '../../api/accounts'
import { useAction } from '../../components/action'
import { CreateForm } from '../../components/CreateForm'
import { ErrorAlert } from '../../components/ErrorAlert'
import { BackLink } from '../../components/nav-bits'
import { RoleChecks } from '../../components/RoleChecks'
import { StatusBadge } from '../../components/Status'
import { Table, Td, TdTime } from '../../components/Table'
import { Button, Field, Input, Loading, PageTitle, Section } from '../../components/ui'
import { ShownKey } from './ShownKey'

export function ApplicationKeys({ id }: { id: string }) {
  const apps = useQuery({ queryKey: accountKeys.applications, queryFn: accountsApi.applications })
  const keys = useQuery({ queryKey: accountKeys.keys(id), queryFn: () => accountsApi.keys(id) })
  const [name, setName] = useState('')
  const [roles, setRoles] = useState<string[]>([])
  const [shown, setShown] = useState<{ key: string; name: string }>()
  const show = (r: { key: string; apiKey: { name: string } }) => setShown({ key: r.key, name: r.apiKey.name })
  const opts = { invalidate: [accountKeys.keys(id)], onSuccess: show }
  const create = useAction(() => accountsApi.createKey(id, name.trim(), roles), {
    ...opts,
    onSuccess: (r) => {
      show(r)
      setName('')
      setRoles([])
    },
  })
  const rotate = useAction((keyId: string) => accountsApi.rotateKey(keyId), opts)
  const disable = useAction((keyId: string) => accountsApi.disableKey(keyId), { invalidate: [accountKeys.keys(id)] })
  const app = apps.data?.applications.find((a) => a.id === id)
  const submit = () => {
    if (name.trim()) create.mutate(undefined)
  }
  return (
    <>
      <BackLink to="/applications">Applications</BackLink>
      <PageTitle>API keys of {app?.name ?? id}</PageTitle>
      {shown && <ShownKey value={shown.key} name={shown.name} onDone={() => setShown(undefined)} />}
      <Section title="Create a key">
        <CreateForm testId="key-create" submit="Create key" pending={create.isPending} error={create.error} errorTestId="key-create-error" onSubmit={submit}>
          <Field label="Name">
            <Input value={name} onChange={(e) => setName(e.target.value)} required data-testid="key-create-name" />
          </Field>
          <RoleChecks legend="Roles" value={roles} onChange={setRoles} testId="key-role" />
        </CreateForm>
      </Section>
      <Section title="Keys">
        <ErrorAlert error={keys.error ?? apps.error} />
        <ErrorAlert error={rotate.error ?? disable.error} testId="key-action-error" />
        {keys.isPending ? (
          <Loading />
        ) : (
          <Table columns={['Name', 'Prefix', 'Roles', 'State', 'Created', 'Last used', 'Expires', '']} empty="No keys yet." caption="API keys" testId="keys-table">
            {(keys.data?.keys ?? []).map((k) => (
              <tr key={k.id} data-testid="key-row" data-id={k.id} data-name={k.name} data-disabled={String(k.disabled)}>
                <Td className="font-medium">{k.name}</Td>
                <Td className="font-mono text-xs">{k.prefix}</Td>
                <Td>{k.roles.join(', ') || '—'}</Td>
                <Td>
                  <StatusBadge status={k.disabled ? 'disabled' : k.replacedBy ? 'replaced' : 'active'} />
                </Td>
                <TdTime at={k.createdAt} />
                <TdTime at={k.lastUsedAt} />
                <TdTime at={k.expiresAt} />
                <Td>
                  {!k.disabled && (
                    <div className="flex gap-1">
                      <Button onClick={() => rotate.mutate(k.id)} disabled={rotate.isPending} data-testid="key-rotate">
                        Rotate
                      </Button>
                      <Button variant="danger" onClick={() => disable.mutate(k.id)} disabled={disable.isPending} data-testid="key-disable">
                        Disable
                      </Button>
                    </div>
                  )}
                </Td>
              </tr>
            ))}
          </Table>
        )}
      </Section>
    </>
  )
}
