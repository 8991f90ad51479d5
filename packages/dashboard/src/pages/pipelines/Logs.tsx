import { useInfiniteQuery } from '@tanstack/react-query'
import { pipelineKeys, pipelinesApi } from '../../api/pipelines'
import type { Stage } from '../../api/types'
import { Loaded } from '../../components/Loaded'
import { Table, Td, TdTime } from '../../components/Table'
import { Button } from '../../components/ui'

const PAGE = 500 // the route's most per call

export function PipelineLogs({ pipelineId, stages }: { pipelineId: string; stages: Stage[] }) {
  const q = useInfiniteQuery({
    queryKey: pipelineKeys.logs(pipelineId),
    queryFn: ({ pageParam }) => pipelinesApi.logs(pipelineId, pageParam),
    initialPageParam: undefined as number | string | undefined,
    getNextPageParam: (last) => (last.logs.length >= PAGE ? last.logs.at(-1)?.id : undefined),
  })
  const names = new Map(stages.map((s) => [s.id, s.name]))
  const logs = q.data?.pages.flatMap((p) => p.logs) ?? []
  return (
    <Loaded query={q}>
      <Table columns={['Time', 'Level', 'Stage', 'Message']} empty="No log lines." caption="Logs" testId="logs-table">
        {logs.map((l) => (
          <tr key={l.id} data-testid="log-line" data-level={l.level}>
            <TdTime at={l.at} />
            <Td className="font-mono text-xs">{l.level}</Td>
            <Td>{(l.stageId && names.get(l.stageId)) ?? '—'}</Td>
            <Td className="font-mono text-xs break-all whitespace-pre-wrap">{l.message}</Td>
          </tr>
        ))}
      </Table>
      {q.hasNextPage && (
        <Button className="mt-2" onClick={() => void q.fetchNextPage()} disabled={q.isFetchingNextPage} data-testid="logs-more">
          More log lines
        </Button>
      )}
    </Loaded>
  )
}
