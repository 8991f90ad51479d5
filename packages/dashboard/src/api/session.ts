import { useQuery } from '@tanstack/react-query'
import { appApi, canAct, isAdmin } from './app'

export const sessionKeys = { me: ['me'] as const, catalog: ['catalog'] as const }

export const useMe = () => useQuery({ queryKey: sessionKeys.me, queryFn: appApi.me, staleTime: 60_000 })

export const useCatalog = () => useQuery({ queryKey: sessionKeys.catalog, queryFn: appApi.catalog, staleTime: 60_000 })

/** What the signed-in caller may do; the page offers only that (the API checks again). */
export function useRights(): { act: boolean; admin: boolean } {
  const user = useMe().data?.user
  return { act: canAct(user), admin: isAdmin(user) }
}
