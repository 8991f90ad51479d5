import { useQuery } from '@tanstack/react-query'
import { useState } from 'react'
import { accountKeys, accountsApi } from '../../api/accounts'
import type { ApiKey } from '../../api/types'
import { useAction } from '../../components/action'
import { ConfirmButton } from '../../components/ConfirmButton'
import { CreateForm } from '../../components/CreateForm'
import { ErrorAlert } from '../../components/ErrorAlert'
import { Loaded } from '../../components/Loaded'
import { BackLink } from '../../components/nav-bits'
import { useRequired } from '../../components/required'
import { RoleChecks } from '../../components/RoleChecks'
import { StatusBadge } from '../../components/Status'
import { Table, Td, TdTime } from '../../components/Table'
import { Field, Input, PageTitle, Section, Select } from '../../components/ui'
import { ShownKey } from './ShownKey'

/** How long a rotated key keeps working beside its successor (the API allows up to 24 h). */
const OVERLAPS: [string, string][] = [
  ['', 'stops at once'],
  ['10m', 'works 10 more minutes'],
  ['1h', 'works 1 more hour'],
  ['24h', 'works 1 more day'],
]

/** Rotation asks first, and how long the old key may keep working while its users move to the new one. */
function RotateButton({ apiKey, disabled, onRotate }: { apiKey: ApiKey; disabled: boolean; onRotate: (overlap: string) => void }) {
  const [overlap, setOverlap] = useState('')
  const choice = (
    <label className="flex items-center gap-1 text-sm">
      <span>The old key</span>
      <Select className="w-auto!" value={overlap} onChange={(e) => setOverlap(e.target.value)} data-testid="key-rotate-overlap">
        {OVERLAPS.map(([v, label]) => (
          <option key={v} value={v}>
            {label}
          </option>
        ))}
      </Select>
    </label>
  )
  return (
    <ConfirmButton variant="secondary" question={`Rotate key “${apiKey.name}”?`} yes="Yes, rotate" more={choice} disabled={disabled} onConfirm={() => onRotate(overlap)} testId="key-rotate">
      Rotate
    </ConfirmButton>
  )
}

export function ApplicationKeys({ id }: { id: string }) {
  const apps = useQuery({ queryKey: accountKeys.applications, queryFn: accountsApi.applications })
  const keys = useQuery({ queryKey: accountKeys.keys(id), queryFn: () => accountsApi.keys(id) })
  const name = useRequired('Enter a name')
  const [roles, setRoles] = useState<string[]>([])
  const [shown, setShown] = useState<{ key: string; name: string }>()
  const show = (r: { key: string; apiKey: { name: string } }) => setShown({ key: r.key, name: r.apiKey.name })
  const create = useAction(() => accountsApi.createKey(id, name.value.trim(), roles), {
    invalidate: [accountKeys.keys(id)],
    onSuccess: (r) => {
      show(r)
      name.set('')
      setRoles([])
    },
  })
  const rotate = useAction((v: { id: string; overlap: string }) => accountsApi.rotateKey(v.id, v.overlap || undefined), { invalidate: [accountKeys.keys(id)], onSuccess: show })
  const disable = useAction((keyId: string) => accountsApi.disableKey(keyId), { invalidate: [accountKeys.keys(id)] })
  const app = apps.data?.applications.find((a) => a.id === id)
  const submit = () => {
    create.reset()
    if (name.check()) create.mutate(undefined)
  }
  return (
    <>
      <BackLink to="/applications">Applications</BackLink>
      <PageTitle>API keys of {app?.name ?? id}</PageTitle>
      {shown && <ShownKey value={shown.key} name={shown.name} onDone={() => setShown(undefined)} />}
      <Section title="Create a key">
        <CreateForm testId="key-create" submit="Create key" pending={create.isPending} error={create.error} errorTestId="key-create-error" onSubmit={submit}>
          <Field label="Name" error={name.error} errorTestId="key-create-name-error">
            <Input value={name.value} onChange={(e) => name.set(e.target.value)} required data-testid="key-create-name" />
          </Field>
          <RoleChecks legend="Roles" value={roles} onChange={setRoles} testId="key-role" />
        </CreateForm>
      </Section>
      <Section title="Keys">
        <ErrorAlert error={apps.error} />
        <ErrorAlert error={rotate.error ?? disable.error} testId="key-action-error" />
        <Loaded query={keys}>
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
                    <div className="flex flex-wrap gap-1">
                      <RotateButton apiKey={k} disabled={rotate.isPending} onRotate={(overlap) => rotate.mutate({ id: k.id, overlap })} />
                      <ConfirmButton question={`Disable key “${k.name}”?`} yes="Yes, disable" disabled={disable.isPending} onConfirm={() => disable.mutate(k.id)} testId="key-disable">
                        Disable
                      </ConfirmButton>
                    </div>
                  )}
                </Td>
              </tr>
            ))}
          </Table>
        </Loaded>
      </Section>
    </>
  )
}
