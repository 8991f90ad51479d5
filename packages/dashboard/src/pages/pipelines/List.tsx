import { useInfiniteQuery } from '@tanstack/react-query'
import { Link } from '@tanstack/react-router'
import { usePollWhileOffline } from '../../api/live'
import { pipelineKeys, pipelinesApi, type PipelineFilters } from '../../api/pipelines'
import { useRights } from '../../api/session'
import type { PipelineSummary } from '../../api/types'
import { Loaded, LoadMore } from '../../components/Loaded'
import { StatusBadge } from '../../components/Status'
import { Table, Td, TdTime } from '../../components/Table'
import { PageTitle } from '../../components/ui'
import { PipelineFilterForm } from './filters'

const counts = (c: Record<string, number> | undefined): string =>
  c
    ? Object.entries(c)
        .filter(([, n]) => n > 0)
        .map(([s, n]) => `${n} ${s}`)
        .join(', ')
    : '—'

export function PipelineList({ filters, onFilters }: { filters: PipelineFilters; onFilters: (f: PipelineFilters) => void }) {
  const { act } = useRights()
  const q = useInfiniteQuery({
    queryKey: pipelineKeys.list(filters),
    queryFn: ({ pageParam }) => pipelinesApi.list(filters, pageParam),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.nextCursor,
    refetchInterval: usePollWhileOffline(10_000),
  })
  const rows: PipelineSummary[] = q.data?.pages.flatMap((p) => p.pipelines) ?? []
  return (
    <>
      <PageTitle
        actions={
          act && (
            <Link to="/pipelines/start" className="rounded border border-blue-700 bg-blue-700 px-3 py-1.5 text-sm font-medium text-white hover:bg-blue-800" data-testid="start-pipeline-link">
              Start a pipeline
            </Link>
          )
        }
      >
        Pipelines
      </PageTitle>
      <PipelineFilterForm key={JSON.stringify(filters)} value={filters} onChange={onFilters} />
      <Loaded query={q}>
        <Table columns={['Name', 'Status', 'Application', 'Stages', 'Keywords', 'Created', 'Finished']} empty="No pipelines match." caption="Pipelines" testId="pipelines-table">
          {rows.map((p) => (
            <tr key={p.id} data-testid="pipeline-row" data-id={p.id} data-status={p.status} data-name={p.name}>
              <Td>
                <Link to="/pipelines/$id" params={{ id: p.id }} className="font-medium text-blue-800 underline" data-testid="pipeline-link">
                  {p.name}
                </Link>
                <div className="font-mono text-xs break-all text-gray-600">{p.id}</div>
              </Td>
              <Td>
                <StatusBadge status={p.status} testId="pipeline-row-status" />
              </Td>
              <Td className="font-mono text-xs break-all">{p.appId}</Td>
              <Td className="text-xs">{counts(p.stageCounts)}</Td>
              <Td className="text-xs">{p.keywords.join(', ') || '—'}</Td>
              <TdTime at={p.createdAt} />
              <TdTime at={p.finishedAt} />
            </tr>
          ))}
        </Table>
      </Loaded>
      <LoadMore query={q} testId="load-more" />
    </>
  )
}
