import { Link } from '@tanstack/react-router'
import type { ReactNode } from 'react'

/** The way back to the list a detail page came from. */
export function BackLink({ to, search, children }: { to: string; search?: Record<string, string>; children: ReactNode }) {
  return (
    <p className="mb-2 text-sm">
      <Link to={to} {...(search ? { search } : {})} className="text-blue-800 underline">
        ← {children}
      </Link>
    </p>
  )
}
