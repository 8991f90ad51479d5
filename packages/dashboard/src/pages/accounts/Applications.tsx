import { useQuery } from '@tanstack/react-query'
import { Link } from '@tanstack/react-router'
import { accountKeys, accountsApi } from '../../api/accounts'
import { useAction } from '../../components/action'
import { CreateForm } from '../../components/CreateForm'
import { useRequired } from '../../components/required'
import { Loaded } from '../../components/Loaded'
import { StatusBadge } from '../../components/Status'
import { Table, Td, TdTime } from '../../components/Table'
import { Field, Input, PageTitle, Section } from '../../components/ui'

export function Applications() {
  const q = useQuery({ queryKey: accountKeys.applications, queryFn: accountsApi.applications })
  const name = useRequired('Enter a name')
  const create = useAction((n: string) => accountsApi.createApplication(n), {
    invalidate: [accountKeys.applications],
    onSuccess: () => name.set(''),
  })
  const submit = () => {
    create.reset()
    if (name.check()) create.mutate(name.value.trim())
  }
  return (
    <>
      <PageTitle>Applications &amp; API keys</PageTitle>
      <Section title="Create an application">
        <CreateForm testId="app-create" submit="Create" pending={create.isPending} error={create.error} errorTestId="app-create-error" onSubmit={submit}>
          <Field label="Name" error={name.error} errorTestId="app-create-name-error">
            <Input value={name.value} onChange={(e) => name.set(e.target.value)} required data-testid="app-create-name" />
          </Field>
        </CreateForm>
        {create.data && (
          <p role="status" className="mt-2 text-sm text-green-800" data-testid="app-created">
            Created {create.data.application.name} (<span className="font-mono">{create.data.application.id}</span>).
          </p>
        )}
      </Section>
      <Section title="Applications">
        <Loaded query={q}>
          <Table columns={['Name', 'Id', 'State', 'Created']} empty="No applications yet." caption="Applications" testId="applications-table">
            {(q.data?.applications ?? []).map((a) => (
              <tr key={a.id} data-testid="application-row" data-id={a.id} data-name={a.name}>
                <Td>
                  <Link to="/applications/$id" params={{ id: a.id }} className="font-medium text-blue-800 underline" data-testid="application-link">
                    {a.name}
                  </Link>
                </Td>
                <Td className="font-mono text-xs">{a.id}</Td>
                <Td>
                  <StatusBadge status={a.disabled ? 'disabled' : 'active'} />
                </Td>
                <TdTime at={a.createdAt} />
              </tr>
            ))}
          </Table>
        </Loaded>
      </Section>
    </>
  )
}
