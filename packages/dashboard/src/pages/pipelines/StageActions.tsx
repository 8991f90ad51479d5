import { useState } from 'react'
import { pipelineKeys, pipelinesApi } from '../../api/pipelines'
import type { Stage } from '../../api/types'
import { useAction } from '../../components/action'
import { ConfirmButton } from '../../components/ConfirmButton'
import { ErrorAlert } from '../../components/ErrorAlert'
import { Button, Input } from '../../components/ui'

const NOT_RERUNNABLE = new Set(['NotStarted', 'Pending', 'AwaitingApproval'])
const NOT_SKIPPABLE = new Set(['Completed', 'Skipped'])

/** What an operator may do to one stage; shown only to callers who may act. */
export function StageActions({ stage, pipelineId }: { stage: Stage; pipelineId: string }) {
  const [reason, setReason] = useState('')
  const opts = { invalidate: [pipelineKeys.detail(pipelineId), pipelineKeys.lists] }
  const rerun = useAction((following: boolean) => pipelinesApi.rerun(stage.id, following), opts)
  const skip = useAction(() => pipelinesApi.skip(stage.id), opts)
  const resume = useAction((approve: boolean) => pipelinesApi.resume(stage.id, approve, approve ? undefined : reason.trim() || undefined), opts)
  const busy = rerun.isPending || skip.isPending || resume.isPending
  const awaiting = stage.status === 'AwaitingApproval'
  return (
    // Stacked in a column of fixed width: side by side, the buttons pushed the stages table wider than a laptop screen.
    <div className="flex w-44 flex-col gap-1">
      <div className="flex flex-col items-start gap-1">
        {awaiting && (
          <>
            <Button variant="primary" disabled={busy} onClick={() => resume.mutate(true)} data-testid="stage-approve" data-stage={stage.name}>
              Approve
            </Button>
            <Input
              aria-label={`Reason for rejecting ${stage.name}`}
              placeholder="Reason"
              value={reason}
              onChange={(e) => setReason(e.target.value)}
              data-testid="stage-reject-reason"
              data-stage={stage.name}
            />
            <ConfirmButton question={`Reject ${stage.name}?`} yes="Yes, reject" disabled={busy} onConfirm={() => resume.mutate(false)} testId="stage-reject" data={{ 'data-stage': stage.name }}>
              Reject
            </ConfirmButton>
          </>
        )}
        {!NOT_RERUNNABLE.has(stage.status) && (
          <>
            <Button disabled={busy} onClick={() => rerun.mutate(false)} data-testid="stage-rerun" data-stage={stage.name}>
              Rerun
            </Button>
            <Button disabled={busy} onClick={() => rerun.mutate(true)} data-testid="stage-rerun-following" data-stage={stage.name}>
              Rerun with following
            </Button>
          </>
        )}
        {!NOT_SKIPPABLE.has(stage.status) && (
          <ConfirmButton variant="secondary" question={`Skip ${stage.name}?`} yes="Yes, skip" disabled={busy} onConfirm={() => skip.mutate(undefined)} testId="stage-skip" data={{ 'data-stage': stage.name }}>
            Skip
          </ConfirmButton>
        )}
      </div>
      <ErrorAlert error={rerun.error ?? skip.error ?? resume.error} testId="stage-action-error" />
    </div>
  )
}
