import type { ReactNode } from 'react'
import { useCatalog } from '../api/session'
import type { Catalog } from '../api/types'
import { Choice, Loading, PageTitle } from './ui'

type Kind = 'flows' | 'signals' | 'channels' | 'workflows'

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
      {catalog.data && names.length === 0 && <p className="text-sm">This app has no {kind}.</p>}
      {names.length > 0 && <Choice label={label} value={name} onChange={onName} options={names} testId={testId} className="mb-4 max-w-sm" />}
      {name && catalog.data && children(name, catalog.data)}
    </>
  )
}
