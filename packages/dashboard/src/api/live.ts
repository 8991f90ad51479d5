import { useQueryClient } from '@tanstack/react-query'
import { createContext, useContext, useRef } from 'react'
import { useEventStream, type StreamState } from './events'
import { pipelineKeys } from './pipelines'

interface PipelineChange {
  appId?: string
  pipelineId?: string
  stage?: string
  stageStatus?: string
  pipelineStatus?: string
}

/**
 * `GET /__onepipe/live`: a change to a pipeline refetches the lists and that
 * pipeline's detail; a resync (the stream dropped changes) or a reconnect
 * refetches everything on screen. Changes are gathered for a moment so a
 * burst of acks costs one refetch, not one per change.
 */
export function useLiveUpdates(): StreamState {
  const qc = useQueryClient()
  const pending = useRef<{ ids: Set<string>; timer?: ReturnType<typeof setTimeout> }>({ ids: new Set() })

  const flush = () => {
    const p = pending.current
    p.timer = undefined
    const ids = [...p.ids]
    p.ids.clear()
    void qc.invalidateQueries({ queryKey: pipelineKeys.lists })
    void qc.invalidateQueries({ queryKey: pipelineKeys.workers })
    for (const id of ids) void qc.invalidateQueries({ queryKey: pipelineKeys.detail(id) })
  }
  const everything = () => void qc.invalidateQueries()

  return useEventStream('/__onepipe/live', {
    on: {
      pipeline: (data) => {
        const id = (data as PipelineChange | null)?.pipelineId
        if (id) pending.current.ids.add(id)
        pending.current.timer ??= setTimeout(flush, 150)
      },
      resync: everything,
    },
    onReopen: everything,
  })
}

export const LiveState = createContext<StreamState>('connecting')

/** How often to read a list that live updates keep fresh: only while the stream is down. */
export function usePollWhileOffline(ms: number): number | false {
  return useContext(LiveState) === 'live' ? false : ms
}
