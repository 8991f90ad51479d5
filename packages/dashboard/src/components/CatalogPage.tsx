import type { ReactNode } from 'react'
import { useCatalog } from '../api/session'
import type { Catalog } from '../api/types'
import { Choice, Loading, PageTitle } from './ui'

type Kind = 'flows' | 'signals' | 'channels' | 'workflows'

/** What a page shows when the app was served without the thing it is about. */
export const Absent = ({ what }: { what: string }) => (
  <p className="text-sm" data-testid="feature-absent">
    This app has no {what}.
  </p>
)

/**
 * A page about something the app may not have (pipelines, cron jobs…): the
 * catalog says so first, and the page is not opened, nor its API called, when
 * the app has none. Without a catalog (an app that does not serve one) the
 * page opens and the API answers for itself.
 */
export function OnlyWith({ has, what, title, children }: { has: (c: Catalog) => boolean; what: string; title: string; children: ReactNode }) {
  const catalog = useCatalog()
  if (catalog.data && has(catalog.data)) return children
  if (!catalog.isPending && !catalog.data) return children
  return (
    <>
      <PageTitle>{title}</PageTitle>
      {catalog.isPending ? <Loading /> : <Absent what={what} />}
    </>
  )
}

/**
 * A page about one named thing of the app's catalog (a flow, a signal…),
 * picked in a select; the first one until the reader picks another.
 */
export function CatalogPage({ title, kind, label, chosen, onName, testId, children }: {
  title: string
  kind: Kind
  label: string
  chosen: string | undefined
  onName: (n: string) => void
  testId: string
  children: (name: string, catalog: Catalog) => ReactNode
}) {
  const catalog = useCatalog()
  const names = (catalog.data?.[kind] ?? []).map((x) => x.name)
  const name = chosen && names.includes(chosen) ? chosen : names[0]
  return (
    <>
      <PageTitle>{title}</PageTitle>
      {catalog.isPending && <Loading />}
      {catalog.data && names.length === 0 && <Absent what={kind} />}
      {names.length > 0 && <Choice label={label} value={name} onChange={onName} options={names} testId={testId} className="mb-4 max-w-sm" />}
      {name && catalog.data && children(name, catalog.data)}
    </>
  )
}
