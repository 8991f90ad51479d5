import { useMutation, useQueryClient } from '@tanstack/react-query'
import { Outlet, useRouter } from '@tanstack/react-router'
import { useSyncExternalStore, type MouseEvent, type ReactNode } from 'react'
import { appApi } from '../api/app'
import { reachability } from '../api/http'
import { LiveState, useLiveUpdates } from '../api/live'
import { useCatalog, useMe, useRights } from '../api/session'
import { ErrorAlert, UnreachableShown } from './ErrorAlert'
import { Nav } from './Nav'
import { Button, Loading } from './ui'

const liveLabel = { live: 'Live', connecting: 'Connecting…', closed: 'Offline, retrying' }

/** One line for an app that does not answer, while every call waits and tries again. */
function Unreachable({ why }: { why: string | undefined }) {
  if (!why) return null
  return (
    <div role="alert" data-testid="unreachable" className="border-b border-amber-700 bg-amber-50 px-4 py-2 text-sm text-amber-950">
      Cannot reach the app: {why}, retrying…
    </div>
  )
}

/** Keyboard users skip the header and the sections to the page itself. */
function SkipLink() {
  const skip = (e: MouseEvent) => {
    // Moved by hand: a bare #main would go through the router's history as a navigation.
    e.preventDefault()
    document.getElementById('main')?.focus()
  }
  return (
    <a href="#main" onClick={skip} className="sr-only rounded bg-white px-3 py-2 text-sm font-medium text-blue-900 focus:not-sr-only focus:absolute focus:top-2 focus:left-2 focus:z-50 focus:ring-2 focus:ring-blue-600" data-testid="skip-link">
      Skip to content
    </a>
  )
}

/** Every page but login: who is signed in, the sections the app has, live updates. `children` stands for the route's page (the page-not-found one). */
export function AppLayout({ children }: { children?: ReactNode }) {
  const down = useSyncExternalStore(reachability.subscribe, reachability.get)
  const me = useMe()
  const catalog = useCatalog()
  const rights = useRights()
  const qc = useQueryClient()
  const router = useRouter()
  const live = useLiveUpdates()
  const logout = useMutation({
    mutationFn: appApi.logout,
    onSuccess: async () => {
      qc.clear()
      await router.navigate({ to: '/login', search: { redirect: undefined } })
    },
  })

  if (me.isPending) {
    return (
      <>
        <Unreachable why={down} />
        <main className="p-6">
          <h1 className="sr-only">OnePipe console</h1>
          <Loading what="Checking your session" />
        </main>
      </>
    )
  }
  const user = me.data?.user
  const app = catalog.data?.app
  return (
    <div className="flex min-h-screen flex-col">
      <SkipLink />
      <Unreachable why={down} />
      <header className="flex flex-wrap items-center justify-between gap-3 border-b border-gray-300 bg-white px-4 py-2">
        <p className="font-semibold text-gray-900">
          OnePipe{app && <span className="ml-2 font-normal text-gray-700" data-testid="app-name">{app.name}{app.version ? ` ${app.version}` : ''}</span>}
        </p>
        <div className="flex items-center gap-3 text-sm">
          <span className="text-gray-700" data-testid="live-status" data-state={live}>
            <span aria-hidden="true" className={live === 'live' ? 'text-green-700' : 'text-amber-700'}>● </span>
            {liveLabel[live]}
          </span>
          {user && (
            <span className="text-gray-800" data-testid="current-user" data-roles={user.roles.join(' ')}>
              {user.email ?? user.id} <span className="text-gray-700">({user.roles.join(', ') || 'no role'})</span>
            </span>
          )}
          <Button data-testid="logout" onClick={() => logout.mutate()} disabled={logout.isPending}>
            Log out
          </Button>
        </div>
      </header>
      <div className="flex flex-1 flex-col md:flex-row">
        <Nav catalog={catalog.data} admin={rights.admin} canStart={rights.act} />
        <main id="main" tabIndex={-1} className="min-w-0 flex-1 p-4 focus:outline-none md:p-6">
          <UnreachableShown.Provider value={!!down}>
            <ErrorAlert error={me.error ?? logout.error} />
            {catalog.error && <ErrorAlert error={catalog.error} testId="catalog-error" />}
            <LiveState.Provider value={live}>{children ?? <Outlet />}</LiveState.Provider>
          </UnreachableShown.Provider>
        </main>
      </div>
    </div>
  )
}
