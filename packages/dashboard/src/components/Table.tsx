import type { ReactNode } from 'react'
import { Time } from './Time'
import { Empty } from './ui'

/**
 * A table with column headers, or a sentence when it has no rows: a header row
 * without cells under it would describe nothing.
 */
export function Table({ columns, children, empty, caption, testId }: { columns: string[]; children: ReactNode[]; empty: string; caption?: string; testId?: string }) {
  if (children.length === 0) return <Empty>{empty}</Empty>
  return (
    <div className="overflow-x-auto" tabIndex={0} role="region" aria-label={caption ?? columns.join(', ')}>
      <table className="min-w-full border-collapse text-left text-sm" data-testid={testId}>
        {caption && <caption className="sr-only">{caption}</caption>}
        <thead>
          <tr className="border-b border-gray-300 bg-gray-100">
            {columns.map((c, i) => (
              <th key={i} scope="col" className="px-2 py-1.5 font-semibold whitespace-nowrap text-gray-800">
                {c || <span className="sr-only">Actions</span>}
              </th>
            ))}
          </tr>
        </thead>
        <tbody className="divide-y divide-gray-200">{children}</tbody>
      </table>
    </div>
  )
}

export const Td = ({ children, className = '', colSpan }: { children?: ReactNode; className?: string; colSpan?: number }) => (
  <td className={`px-2 py-1.5 align-top ${className}`} colSpan={colSpan}>
    {children}
  </td>
)

export const TdTime = ({ at }: { at: string | null | undefined }) => (
  <td className="px-2 py-1.5 align-top">
    <Time at={at} />
  </td>
)
