import { createRootRoute, createRoute, createRouter, Link, Outlet } from '@tanstack/react-router'
import { Fragment, type ReactNode } from 'react'
import { useRights } from './api/session'
import type { Catalog } from './api/types'
import { OnlyWith } from './components/CatalogPage'
import { AppLayout } from './components/Layout'
import { PageTitle } from './components/ui'
import { ApplicationKeys } from './pages/accounts/Keys'
import { Applications } from './pages/accounts/Applications'
import { Users } from './pages/accounts/Users'
import { CronHistory } from './pages/cron/History'
import { CronJobs } from './pages/cron/Jobs'
import { BASE, LoginPage } from './pages/Login'
import { Overview } from './pages/Overview'
import { PipelineDetail } from './pages/pipelines/Detail'
import type { PipelineFilters } from './api/pipelines'
import { PipelineList } from './pages/pipelines/List'
import { StartPipeline } from './pages/pipelines/Start'
import { Workers } from './pages/pipelines/Workers'
import { Channels } from './pages/streams/Channels'
import { Flows } from './pages/streams/Flows'
import { Projections } from './pages/streams/Projections'
import { Signals } from './pages/streams/Signals'
import { RunDetail } from './pages/workflows/RunDetail'
import { WorkflowRuns, type RunFilters } from './pages/workflows/Runs'

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined)

function NotFoundText() {
  return (
    <>
      <PageTitle>Page not found</PageTitle>
      <p className="text-sm">
        No page of the console is at this address.{' '}
        <Link to="/" className="text-blue-800 underline">
          Overview
        </Link>
      </p>
    </>
  )
}

/** Outside the console's pages (the router's last resort): without the layout, which needs a session. */
function NotFound() {
  return (
    <main className="p-6">
      <NotFoundText />
    </main>
  )
}

/** A page that needs more than reading: others get the same answer the API would give them. */
function Needs({ role, what, page }: { role: 'operator' | 'admin'; what: string; page: ReactNode }) {
  const rights = useRights()
  if (role === 'admin' ? rights.admin : rights.act) return page
  return (
    <>
      <PageTitle>{what}</PageTitle>
      <div role="alert" data-testid="forbidden" className="rounded border border-red-700 bg-red-50 p-3 text-sm text-red-900">
        {what} needs the <span data-testid="forbidden-role">{role}</span> role.
      </div>
    </>
  )
}

const rootRoute = createRootRoute({ component: Outlet, notFoundComponent: NotFound })

const loginRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: 'login',
  validateSearch: (s: Record<string, unknown>): { redirect?: string | undefined } => ({ redirect: str(s.redirect) }),
  component: function Login() {
    return <LoginPage redirect={loginRoute.useSearch().redirect} />
  },
})

const app = createRoute({ getParentRoute: () => rootRoute, id: 'app', component: AppLayout })

/** A page about one thing named in the path; remounted when the name changes, so nothing of the last one lingers. */
const byParam = <P extends string>(path: P, render: (value: string) => ReactNode) => {
  const r = createRoute({
    getParentRoute: () => app,
    path,
    component: function ByParam() {
      const params: unknown = r.useParams()
      const value = Object.values(params as Record<string, string>)[0] ?? ''
      return <Fragment key={value}>{render(value)}</Fragment>
    },
  })
  return r
}

const overview = createRoute({ getParentRoute: () => app, path: '/', component: Overview })
// Any other address under the console: the page says so inside the layout, nav and header kept.
const unknown = createRoute({ getParentRoute: () => app, path: '$', component: NotFoundText })

const hasPipelines = (c: Catalog) => c.features.pipelines
const pipelinesOnly = (title: string, page: ReactNode) => (
  <OnlyWith has={hasPipelines} what="pipelines" title={title}>
    {page}
  </OnlyWith>
)

const pipelines = createRoute({
  getParentRoute: () => app,
  path: 'pipelines',
  validateSearch: (s: Record<string, unknown>): PipelineFilters => ({ status: str(s.status), appId: str(s.appId), q: str(s.q), from: str(s.from), to: str(s.to) }),
  component: function Pipelines() {
    const navigate = pipelines.useNavigate()
    return pipelinesOnly('Pipelines', <PipelineList filters={pipelines.useSearch()} onFilters={(f) => void navigate({ search: f })} />)
  },
})
const startPipeline = createRoute({
  getParentRoute: () => app,
  path: 'pipelines/start',
  component: () => pipelinesOnly('Start a pipeline', <Needs role="operator" what="Starting a pipeline" page={<StartPipeline />} />),
})
const workers = createRoute({ getParentRoute: () => app, path: 'pipelines/workers', component: () => pipelinesOnly('Workers', <Workers />) })
const pipeline = byParam('pipelines/$id', (id) => pipelinesOnly('Pipeline', <PipelineDetail id={id} />))

const workflows = createRoute({
  getParentRoute: () => app,
  path: 'workflows',
  validateSearch: (s: Record<string, unknown>): RunFilters => ({ name: str(s.name), status: str(s.status), input: str(s.input) }),
  component: function Workflows() {
    const navigate = workflows.useNavigate()
    return <WorkflowRuns filters={workflows.useSearch()} onFilters={(f) => void navigate({ search: f })} />
  },
})
const run = byParam('workflows/runs/$id', (id) => (
  <OnlyWith has={(c) => c.workflows.length > 0} what="workflows" title="Workflow run">
    <RunDetail id={id} />
  </OnlyWith>
))

const hasCron = (c: Catalog) => c.cron.length > 0
const cron = createRoute({
  getParentRoute: () => app,
  path: 'cron',
  component: () => (
    <OnlyWith has={hasCron} what="cron jobs" title="Cron">
      <CronJobs />
    </OnlyWith>
  ),
})
const cronJob = byParam('cron/$name', (name) => (
  <OnlyWith has={hasCron} what="cron jobs" title={`Cron job ${name}`}>
    <CronHistory name={name} />
  </OnlyWith>
))

/** Pages that show one named thing of the catalog, chosen in the URL (`?name=`). */
const named = (path: string, Page: (p: { name: string | undefined; onName: (n: string) => void }) => ReactNode) => {
  const r = createRoute({
    getParentRoute: () => app,
    path,
    validateSearch: (s: Record<string, unknown>): { name?: string | undefined } => ({ name: str(s.name) }),
    component: function Named() {
      const navigate = r.useNavigate()
      const search: unknown = r.useSearch()
      return <Page name={(search as { name?: string }).name} onName={(name) => void navigate({ search: { name } })} />
    },
  })
  return r
}
const flows = named('flows', Flows)
const signals = named('signals', Signals)
const channels = named('channels', Channels)
const projections = createRoute({
  getParentRoute: () => app,
  path: 'projections',
  component: () => (
    <OnlyWith has={(c) => c.projections.length > 0} what="projections" title="Projections">
      <Projections />
    </OnlyWith>
  ),
})

const accounts = 'Managing applications and API keys'
const applications = createRoute({ getParentRoute: () => app, path: 'applications', component: () => <Needs role="admin" what={accounts} page={<Applications />} /> })
const application = byParam('applications/$id', (id) => <Needs role="admin" what={accounts} page={<ApplicationKeys id={id} />} />)
const users = createRoute({ getParentRoute: () => app, path: 'users', component: () => <Needs role="admin" what="Managing users" page={<Users />} /> })

const routeTree = rootRoute.addChildren([
  loginRoute,
  app.addChildren([overview, unknown, pipelines, startPipeline, workers, pipeline, workflows, run, cron, cronJob, flows, signals, channels, projections, applications, application, users]),
])

export const router = createRouter({ routeTree, basepath: BASE, defaultNotFoundComponent: NotFound })

declare module '@tanstack/react-router' {
  interface Register {
    router: typeof router
  }
}
