import { Link } from '@tanstack/react-router'
import type { Catalog } from '../api/types'

interface Item {
  to: string
  label: string
  id: string
  show: (c: Catalog | undefined, admin: boolean) => boolean
}

/** Accounts are Auth's: offered to admins of an app that has it. */
const accounts = (c: Catalog | undefined, admin: boolean) => admin && (!c || c.features.auth)

// Without a catalog (an older app, or while it failed) every section is offered.
const items: Item[] = [
  { to: '/', label: 'Overview', id: 'overview', show: () => true },
  { to: '/pipelines', label: 'Pipelines', id: 'pipelines', show: (c) => !c || c.features.pipelines },
  { to: '/pipelines/start', label: 'Start pipeline', id: 'start', show: (c) => !c || c.features.pipelines },
  { to: '/pipelines/workers', label: 'Workers', id: 'workers', show: (c) => !c || c.features.pipelines },
  { to: '/workflows', label: 'Workflows', id: 'workflows', show: (c) => !c || c.workflows.length > 0 },
  { to: '/cron', label: 'Cron', id: 'cron', show: (c) => !c || c.cron.length > 0 },
  { to: '/flows', label: 'Flows', id: 'flows', show: (c) => !c || c.flows.length > 0 },
  { to: '/signals', label: 'Signals', id: 'signals', show: (c) => !c || c.signals.length > 0 },
  { to: '/projections', label: 'Projections', id: 'projections', show: (c) => !c || c.projections.length > 0 },
  { to: '/channels', label: 'Channels', id: 'channels', show: (c) => !c || c.channels.length > 0 },
  { to: '/applications', label: 'Applications & keys', id: 'applications', show: accounts },
  { to: '/users', label: 'Users', id: 'users', show: accounts },
]

export function Nav({ catalog, admin, canStart }: { catalog: Catalog | undefined; admin: boolean; canStart: boolean }) {
  return (
    <nav aria-label="Sections" className="w-full shrink-0 border-b border-gray-300 bg-white md:w-52 md:border-r md:border-b-0">
      <ul className="flex flex-wrap gap-1 p-2 md:flex-col">
        {items
          .filter((i) => i.show(catalog, admin) && (i.id !== 'start' || canStart))
          .map((i) => (
            <li key={i.id}>
              <Link
                to={i.to}
                data-testid={`nav-${i.id}`}
                activeOptions={{ exact: i.to === '/' || i.to === '/pipelines' }}
                className="block rounded px-3 py-1.5 text-sm text-gray-800 hover:bg-gray-100"
                activeProps={{ className: 'bg-blue-50 font-semibold text-blue-900', 'aria-current': 'page' }}
              >
                {i.label}
              </Link>
            </li>
          ))}
      </ul>
    </nav>
  )
}
