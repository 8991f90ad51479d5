import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { RouterProvider } from '@tanstack/react-router'
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { isApiError, isNetworkError, setUnauthorizedHandler } from './api/http'
import './index.css'
import { BASE } from './pages/Login'
import { router } from './router'

const queryClient = new QueryClient({
  defaultOptions: {
    queries: {
      // A 4xx will answer the same again; a 5xx may not. An app that cannot be reached is
      // asked again until it answers (the layout's banner says so), so pages wait instead of failing.
      retry: (n, e) => isNetworkError(e) || (n < 2 && !(isApiError(e) && e.status >= 400 && e.status < 500)),
      staleTime: 5_000,
    },
  },
})

setUnauthorizedHandler(() => {
  if (window.location.pathname.startsWith(`${BASE}/login`)) return
  // Cleared once the pages that read the API are gone, so nothing asks again on the way out.
  void router.navigate({ to: '/login', search: { redirect: window.location.pathname + window.location.search } }).then(() => queryClient.clear())
})

const root = document.getElementById('root')
if (root) {
  createRoot(root).render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <RouterProvider router={router} />
      </QueryClientProvider>
    </StrictMode>,
  )
}
