import { useQuery } from '@tanstack/react-query'
import { Link } from '@tanstack/react-router'
import { cronApi } from '../../api/ops'
import { useCatalog, useRights } from '../../api/session'
import { ErrorAlert } from '../../components/ErrorAlert'
import { Loaded } from '../../components/Loaded'
import { BackLink } from '../../components/nav-bits'
import { brief, errorText } from '../../components/Json'
import { StatusBadge } from '../../components/Status'
import { Table, Td, TdTime } from '../../components/Table'
import { Facts, PageTitle, Section } from '../../components/ui'
import { CronActions, cronKeys, leaseText, NextRuns, zoneText } from './Jobs'

/** A job's page; a name the app does not have (a stale link, a typo) says so instead of an empty history. */
export function CronHistory({ name }: { name: string }) {
  const catalog = useCatalog()
  if (catalog.data && !catalog.data.cron.some((c) => c.name === name)) {
    return (
      <>
        <PageTitle>Cron job {name}</PageTitle>
        <p className="text-sm" data-testid="cron-unknown">
          No cron job named <span className="font-mono">{name}</span>.{' '}
          <Link to="/cron" className="text-blue-800 underline">
            See the app&apos;s cron jobs
          </Link>
        </p>
      </>
    )
  }
  return <CronJobPage name={name} />
}

function CronJobPage({ name }: { name: string }) {
  const { act } = useRights()
  const jobs = useQuery({ queryKey: cronKeys.jobs, queryFn: cronApi.jobs })
  const q = useQuery({ queryKey: cronKeys.history(name), queryFn: () => cronApi.history(name), refetchInterval: 5000 })
  const job = jobs.data?.jobs.find((j) => j.name === name)
  return (
    <>
      <BackLink to="/cron">Cron</BackLink>
      <PageTitle actions={act && job && <CronActions job={job} />}>Cron job {name}</PageTitle>
      <ErrorAlert error={jobs.error} />
      {job && (
        <Section title="Job">
          <Facts
            items={[
              ['Schedule', <span key="s" className="font-mono">{job.schedule}</span>],
              ['Time zone', zoneText(job)],
              ['State', <StatusBadge key="p" status={job.paused ? 'paused' : 'active'} testId="cron-state" />],
              ['Next runs', <NextRuns key="n" job={job} />],
              ['Lease', leaseText(job.lease)],
            ]}
          />
        </Section>
      )}
      <Section title="History">
        <Loaded query={q}>
          <Table columns={['Execution', 'Kind', 'Status', 'Scheduled', 'Started', 'Finished', 'Output', 'Error']} empty="No executions yet." caption="Executions" testId="cron-history">
            {(q.data?.executions ?? []).map((e) => (
              <tr key={e.executionId} data-testid="cron-execution" data-id={e.executionId} data-status={e.status} data-kind={e.kind}>
                <Td className="font-mono text-xs">{e.executionId}</Td>
                <Td>{e.kind}</Td>
                <Td>
                  <StatusBadge status={e.status} />
                </Td>
                <TdTime at={e.scheduledTime} />
                <TdTime at={e.startedAt} />
                <TdTime at={e.finishedAt} />
                <Td className="max-w-xs font-mono text-xs break-all">{brief(e.output)}</Td>
                <Td className="max-w-xs text-xs text-red-900">{errorText(e.error)}</Td>
              </tr>
            ))}
          </Table>
        </Loaded>
      </Section>
    </>
  )
}
