import { useQuery } from '@tanstack/react-query'
import { appApi, probe } from '../api/app'
import { useCatalog } from '../api/session'
import { ErrorAlert } from '../components/ErrorAlert'
import { Loaded } from '../components/Loaded'
import { Json } from '../components/Json'
import { StatusBadge } from '../components/Status'
import { Table, Td, TdTime } from '../components/Table'
import { ago } from '../components/Time'
import { Facts, Loading, PageTitle, Section } from '../components/ui'

function Probe({ path }: { path: '/health' | '/ready' }) {
  const q = useQuery({ queryKey: ['probe', path], queryFn: () => probe(path), refetchInterval: 10_000 })
  const id = path.slice(1)
  if (q.isPending) return <Loading />
  if (q.error) return <ErrorAlert error={q.error} />
  const status = (q.data.body as { status?: string } | null)?.status ?? (q.data.ok ? 'ok' : 'unavailable')
  return (
    <div>
      <p className="mb-2 text-sm">
        <span className="font-mono">{path}</span> answered {q.data.status}: <StatusBadge status={status} testId={`${id}-status`} />
      </p>
      <Json value={q.data.body} testId={`${id}-body`} label={`${path} answer`} />
    </div>
  )
}

export function Overview() {
  const catalog = useCatalog()
  const instances = useQuery({ queryKey: ['instances'], queryFn: appApi.instances, refetchInterval: 10_000 })
  const c = catalog.data
  return (
    <>
      <PageTitle>Overview</PageTitle>
      {c && (
        <Section title="App" testId="app-summary">
          <Facts
            items={[
              ['Name', c.app.name],
              ['Version', c.app.version ?? '—'],
              ['Instance', <span key="i" className="font-mono text-xs">{c.app.instanceId ?? '—'}</span>],
              ['Flows', c.flows.length],
              ['Workflows', c.workflows.length],
              ['Cron jobs', c.cron.length],
              ['Signals', c.signals.length],
              ['Projections', c.projections.length],
              ['Channels', c.channels.length],
              ['Pipeline templates', c.pipelines.length],
              ['Pipelines', c.features.pipelines ? 'on' : 'off'],
              ['Auth', c.features.auth ? 'on' : 'off'],
            ]}
          />
        </Section>
      )}
      <div className="grid gap-0 lg:grid-cols-2 lg:gap-4">
        <Section title="Health">
          <Probe path="/health" />
        </Section>
        <Section title="Readiness">
          <Probe path="/ready" />
        </Section>
      </div>
      <Section title="Instances">
        <Loaded query={instances}>
          <Table columns={['Id', 'Version', 'Host', 'PID', 'Started', 'Heartbeat', 'Live']} empty="No instances." caption="Instances" testId="instances-table">
            {(instances.data?.instances ?? []).map((i) => (
              <tr key={i.id} data-testid="instance-row" data-live={String(i.live)}>
                <Td className="font-mono text-xs">{i.id}</Td>
                <Td>{i.version ?? '—'}</Td>
                <Td>{i.host ?? '—'}</Td>
                <Td>{i.pid ?? '—'}</Td>
                <TdTime at={i.startedAt} />
                <Td>{ago(i.heartbeatAt)}</Td>
                <Td>
                  <StatusBadge status={i.live ? 'live' : 'stopped'} />
                </Td>
              </tr>
            ))}
          </Table>
        </Loaded>
      </Section>
    </>
  )
}
