import { useQuery } from '@tanstack/react-query'
import { useRights } from '../../api/session'
import { workflowsApi } from '../../api/workflows'
import { useAction } from '../../components/action'
import { ConfirmButton } from '../../components/ConfirmButton'
import { ErrorAlert } from '../../components/ErrorAlert'
import { BackLink } from '../../components/nav-bits'
import { errorText, JsonPanel } from '../../components/Json'
import { StatusBadge } from '../../components/Status'
import { Table, Td, TdTime } from '../../components/Table'
import { EpochTime, Time } from '../../components/Time'
import { Button, Facts, Loading, PageTitle, Section } from '../../components/ui'
import { SignalForm } from './SignalForm'

const FINAL = new Set(['completed', 'failed', 'cancelled'])

/** `ctx.sleep` records its wake-up time (epoch ms) as the step's result, under `$sleep`, `$sleep#2`… */
const isSleep = (stepId: string): boolean => /^\$sleep(#\d+)?$/.test(stepId)

function StepResult({ stepId, result }: { stepId: string; result: unknown }) {
  if (isSleep(stepId) && typeof result === 'number') {
    return (
      <>
        wakes <EpochTime ms={result} />
      </>
    )
  }
  return <>{result === undefined ? '—' : JSON.stringify(result)}</>
}

export function RunDetail({ id }: { id: string }) {
  const { act } = useRights()
  const key = ['workflow-run', id]
  const q = useQuery({
    queryKey: key,
    queryFn: () => workflowsApi.run(id),
    refetchInterval: (query) => (query.state.data && FINAL.has(query.state.data.run.status) ? false : 3000),
  })
  const cancel = useAction(() => workflowsApi.cancel(id), { invalidate: [key, ['workflows']] })
  const retry = useAction(() => workflowsApi.retry(id), { invalidate: [key, ['workflows']] })
  const d = q.data
  const run = d?.run
  const running = !!run && !FINAL.has(run.status)
  // Said until the run ends again: read before the retry, the run still shows its old final status.
  const retried = !!retry.data && (running || q.dataUpdatedAt < retry.submittedAt)
  return (
    <>
      <BackLink to="/workflows" search={run ? { name: run.workflowName } : {}}>Workflows</BackLink>
      <PageTitle
        actions={
          act &&
          run && (
            <>
              {running && (
                <ConfirmButton question="Cancel this run?" yes="Yes, cancel" onConfirm={() => cancel.mutate(undefined)} disabled={cancel.isPending} testId="wf-cancel">
                  Cancel run
                </ConfirmButton>
              )}
              {(run.status === 'failed' || run.status === 'cancelled') && (
                <Button variant="primary" onClick={() => retry.mutate(undefined)} disabled={retry.isPending} data-testid="wf-retry">
                  Retry
                </Button>
              )}
            </>
          )
        }
      >
        Run of {run?.workflowName ?? 'workflow'}
      </PageTitle>
      <ErrorAlert error={q.error} />
      <ErrorAlert error={cancel.error ?? retry.error} testId="wf-action-error" />
      {retried && (
        <p role="status" className="mb-2 text-sm text-green-800" data-testid="wf-retried">
          Retried: the run is {retry.data.status} again.
        </p>
      )}
      {q.isPending && <Loading />}
      {d && run && (
        <>
          <Section title="Run">
            <Facts
              items={[
                ['Status', <StatusBadge key="s" status={run.status} testId="wf-status" />],
                ['Id', <span key="i" className="font-mono text-xs">{run.workflowId}</span>],
                ['Created', <Time key="c" at={run.createdAt} />],
                ['Updated', <Time key="u" at={run.updatedAt} />],
                ['Completed', <Time key="d" at={run.completedAt} />],
                ['Wakes at', <Time key="w" at={run.wakeAt} />],
              ]}
            />
            <div className="mt-3 grid gap-3 lg:grid-cols-3">
              <JsonPanel title="Input" value={run.input} />
              <JsonPanel title="Output" value={run.output} testId="wf-run-output" />
              <JsonPanel title="Error" value={run.error} testId="wf-run-error" />
            </div>
          </Section>
          <Section title="Steps">
            <Table columns={['Step', 'Status', 'Attempts', 'Recorded', 'Result', 'Error']} empty="No steps recorded yet." caption="Steps" testId="wf-steps-table">
              {d.steps.map((s) => (
                <tr key={s.stepId} data-testid="wf-step-row" data-step={s.stepId} data-status={s.status}>
                  <Td className="font-mono text-xs">{s.stepId}</Td>
                  <Td>
                    <StatusBadge status={s.status} />
                  </Td>
                  <Td>{s.attempts}</Td>
                  <TdTime at={s.createdAt} />
                  <Td className="max-w-sm font-mono text-xs break-all">
                    <StepResult stepId={s.stepId} result={s.result} />
                  </Td>
                  <Td className="max-w-xs text-xs text-red-900">{errorText(s.error)}</Td>
                </tr>
              ))}
            </Table>
          </Section>
          <Section title="Signals waiting to be read">
            <Table columns={['Name', 'Data', 'Sent']} empty="No signals waiting." caption="Pending signals">
              {d.pendingSignals.map((s, i) => (
                <tr key={i} data-testid="wf-pending-signal" data-name={s.name}>
                  <Td className="font-mono text-xs">{s.name}</Td>
                  <Td className="font-mono text-xs break-all">{JSON.stringify(s.data)}</Td>
                  <TdTime at={s.createdAt} />
                </tr>
              ))}
            </Table>
          </Section>
          {act && running && <SignalForm runId={run.workflowId} invalidate={key} />}
        </>
      )}
    </>
  )
}
