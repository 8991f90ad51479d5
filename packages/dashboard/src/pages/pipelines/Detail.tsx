import { useQuery, useQueryClient } from '@tanstack/react-query'
import { pipelineKeys, pipelinesApi } from '../../api/pipelines'
import { useRights } from '../../api/session'
import { useAction } from '../../components/action'
import { ConfirmButton } from '../../components/ConfirmButton'
import { ErrorAlert } from '../../components/ErrorAlert'
import { BackLink } from '../../components/nav-bits'
import { JsonPanel } from '../../components/Json'
import { StatusBadge } from '../../components/Status'
import { Time } from '../../components/Time'
import { Button, Facts, Loading, PageTitle, Section } from '../../components/ui'
import { StageGraph } from './Graph'
import { PipelineLogs } from './Logs'
import { StageDetails, StageTable } from './Stages'

export function PipelineDetail({ id }: { id: string }) {
  const { act } = useRights()
  const qc = useQueryClient()
  const q = useQuery({
    queryKey: pipelineKeys.detail(id),
    queryFn: () => pipelinesApi.get(id),
    // Claims and ready stages are not sent live (docs/pipelines.md), so a running pipeline is also read every few seconds.
    refetchInterval: (query) => (query.state.data?.status === 'Running' ? 4000 : false),
  })
  const cancel = useAction(() => pipelinesApi.cancel(id), {
    invalidate: [pipelineKeys.detail(id), pipelineKeys.lists],
  })
  const p = q.data
  return (
    <>
      <BackLink to="/pipelines">Pipelines</BackLink>
      <PageTitle
        tab={`Pipeline ${id.slice(0, 8)}…`}
        actions={
          act &&
          p?.status === 'Running' && (
            <ConfirmButton question="Cancel this pipeline?" yes="Yes, cancel" onConfirm={() => cancel.mutate(undefined)} disabled={cancel.isPending} testId="cancel-pipeline">
              Cancel pipeline
            </ConfirmButton>
          )
        }
      >
        Pipeline {p ? p.name : ''}
      </PageTitle>
      <ErrorAlert error={q.error} />
      <ErrorAlert error={cancel.error} testId="cancel-error" />
      {q.isPending && <Loading />}
      {p && (
        <>
          <Section title="Summary" testId="pipeline-summary">
            <Facts
              items={[
                ['Status', <StatusBadge key="s" status={p.status} testId="pipeline-status" />],
                ['Id', <span key="i" className="font-mono text-xs break-all" data-testid="pipeline-id">{p.id}</span>],
                ['Application', <span key="a" className="font-mono text-xs break-all">{p.appId}</span>],
                ['Template', p.template ?? '—'],
                ['Keywords', p.keywords.join(', ') || '—'],
                ['Created', <Time key="c" at={p.createdAt} />],
                ['Updated', <Time key="u" at={p.updatedAt} />],
                ['Finished', <Time key="f" at={p.finishedAt} />],
              ]}
            />
            <div className="mt-3 grid gap-3 lg:grid-cols-2">
              <JsonPanel title="Input" value={p.input} />
              <JsonPanel title="Context" value={p.context} />
            </div>
          </Section>
          <Section title="Stage graph">
            <StageGraph stages={p.stages} />
          </Section>
          <Section title="Stages" actions={<Button onClick={() => void qc.invalidateQueries({ queryKey: pipelineKeys.detail(id) })}>Refresh</Button>}>
            <StageTable stages={p.stages} pipelineId={p.id} actions={act && p.status !== 'Cancelled'} />
          </Section>
          <Section title="Stage details">
            <StageDetails stages={p.stages} />
          </Section>
          <Section title="Logs">
            <PipelineLogs pipelineId={p.id} stages={p.stages} />
          </Section>
        </>
      )}
    </>
  )
}
