const tones: Record<string, string> = {
  completed: 'bg-green-100 text-green-900 border-green-700',
  succeeded: 'bg-green-100 text-green-900 border-green-700',
  ok: 'bg-green-100 text-green-900 border-green-700',
  live: 'bg-green-100 text-green-900 border-green-700',
  active: 'bg-green-100 text-green-900 border-green-700',
  running: 'bg-blue-100 text-blue-900 border-blue-700',
  pending: 'bg-sky-50 text-sky-900 border-sky-700',
  retryscheduled: 'bg-amber-100 text-amber-900 border-amber-700',
  awaitingapproval: 'bg-purple-100 text-purple-900 border-purple-700',
  draining: 'bg-amber-100 text-amber-900 border-amber-700',
  paused: 'bg-amber-100 text-amber-900 border-amber-700',
  failed: 'bg-red-100 text-red-900 border-red-700',
  lost: 'bg-red-100 text-red-900 border-red-700',
  unavailable: 'bg-red-100 text-red-900 border-red-700',
  cancelled: 'bg-gray-200 text-gray-900 border-gray-600',
  skipped: 'bg-gray-100 text-gray-800 border-gray-500',
  disabled: 'bg-gray-200 text-gray-900 border-gray-600',
  replaced: 'bg-gray-100 text-gray-800 border-gray-500',
  stopped: 'bg-gray-100 text-gray-800 border-gray-500',
  notstarted: 'bg-white text-gray-800 border-gray-500',
}

/** Colours for a status of any primitive (`Running`, `running`, `lost`…). */
export const toneOf = (status: string): string => tones[status.toLowerCase()] ?? 'bg-white text-gray-800 border-gray-500'

export function StatusBadge({ status, testId }: { status: string; testId?: string }) {
  return (
    <span className={`inline-block rounded border px-1.5 py-0.5 text-xs font-medium whitespace-nowrap ${toneOf(status)}`} data-testid={testId} data-status={status}>
      {status}
    </span>
  )
}
