import { useQuery } from '@tanstack/react-query'
import { Link } from '@tanstack/react-router'
import { cronApi } from '../../api/ops'
import { useRights } from '../../api/session'
import type { CronJob } from '../../api/types'
import { useAction } from '../../components/action'
import { ConfirmButton } from '../../components/ConfirmButton'
import { ErrorAlert } from '../../components/ErrorAlert'
import { Loaded } from '../../components/Loaded'
import { StatusBadge } from '../../components/Status'
import { Table, Td } from '../../components/Table'
import { ZonedTime } from '../../components/Time'
import { Button, PageTitle } from '../../components/ui'

/** The instance holding a job's lease, and until when. */
export const leaseText = (l: CronJob['lease']): string =>
  l?.holder ? `${l.holder}${l.expiresAt ? ` until ${new Date(l.expiresAt).toLocaleTimeString()}` : ''}` : 'none'

/** A schedule without a zone is read in the server's own (croner's default), which the page cannot know. */
export const zoneText = (job: Pick<CronJob, 'timezone'>): string => job.timezone || 'server time'

/** The next runs in the job's zone, or in the reader's without one; each names its zone. */
export function NextRuns({ job }: { job: CronJob }) {
  return (
    <ul className="text-xs">
      {job.nextRuns.map((t) => (
        <li key={t}>
          <ZonedTime at={t} timeZone={job.timezone || undefined} />
        </li>
      ))}
    </ul>
  )
}

export const cronKeys = { jobs: ['cron'] as const, history: (name: string) => ['cron', name, 'history'] as const }

/** Trigger now, pause and resume of one job; the outcome (the execution id) stays beside it. */
export function CronActions({ job }: { job: CronJob }) {
  const opts = { invalidate: [cronKeys.jobs, cronKeys.history(job.name)] }
  const trigger = useAction(() => cronApi.trigger(job.name), opts)
  const pause = useAction(() => cronApi.pause(job.name), opts)
  const resume = useAction(() => cronApi.resume(job.name), opts)
  const busy = trigger.isPending || pause.isPending || resume.isPending
  return (
    <div className="flex flex-col gap-1">
      <div className="flex flex-wrap gap-1">
        <Button variant="primary" disabled={busy} onClick={() => trigger.mutate(undefined)} data-testid="cron-trigger" data-name={job.name}>
          Trigger now
        </Button>
        {job.paused ? (
          <Button disabled={busy} onClick={() => resume.mutate(undefined)} data-testid="cron-resume" data-name={job.name}>
            Resume
          </Button>
        ) : (
          <ConfirmButton variant="secondary" question="Pause this job?" yes="Yes, pause" disabled={busy} onConfirm={() => pause.mutate(undefined)} testId="cron-pause" data={{ 'data-name': job.name }}>
            Pause
          </ConfirmButton>
        )}
      </div>
      {trigger.data && (
        <p role="status" className="text-xs text-green-800" data-testid="cron-triggered">
          Started execution <span className="font-mono">{trigger.data.executionId}</span>
        </p>
      )}
      <ErrorAlert error={trigger.error ?? pause.error ?? resume.error} testId="cron-action-error" />
    </div>
  )
}

export function CronJobs() {
  const { act } = useRights()
  const q = useQuery({ queryKey: cronKeys.jobs, queryFn: cronApi.jobs, refetchInterval: 15_000 })
  return (
    <>
      <PageTitle>Cron</PageTitle>
      <Loaded query={q}>
        <Table columns={['Job', 'Schedule', 'State', 'Next runs', 'Lease', ...(act ? [''] : [])]} empty="No cron jobs." caption="Cron jobs" testId="cron-table">
          {(q.data?.jobs ?? []).map((j) => (
            <tr key={j.name} data-testid="cron-row" data-name={j.name} data-paused={String(j.paused)}>
              <Td>
                <Link to="/cron/$name" params={{ name: j.name }} className="font-medium text-blue-800 underline" data-testid="cron-history-link">
                  {j.name}
                </Link>
              </Td>
              <Td className="text-xs">
                <div className="font-mono">{j.schedule}</div>
                <div className="text-gray-700">{zoneText(j)}</div>
              </Td>
              <Td>
                <StatusBadge status={j.paused ? 'paused' : 'active'} testId="cron-state" />
              </Td>
              <Td>
                <NextRuns job={j} />
              </Td>
              <Td className="font-mono text-xs break-all">
                <span data-testid="cron-lease">{leaseText(j.lease)}</span>
              </Td>
              {act && (
                <Td>
                  <CronActions job={j} />
                </Td>
              )}
            </tr>
          ))}
        </Table>
      </Loaded>
    </>
  )
}
