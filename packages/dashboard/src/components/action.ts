import { useMutation, useQueryClient, type QueryKey } from '@tanstack/react-query'

/** A button's call: its error stays on screen beside it; what it changed is read again. */
export function useAction<V, T>(fn: (v: V) => Promise<T>, o: { invalidate?: QueryKey[]; onSuccess?: (t: T, v: V) => void } = {}) {
  const qc = useQueryClient()
  return useMutation({
    mutationFn: fn,
    onSuccess: (t, v) => {
      o.onSuccess?.(t, v)
      for (const queryKey of o.invalidate ?? []) void qc.invalidateQueries({ queryKey })
    },
  })
}
