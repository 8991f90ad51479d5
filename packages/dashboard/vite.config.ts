import tailwindcss from '@tailwindcss/vite'
import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

// `vite dev` and `vite preview` forward the API to a running app, so the console can be
// worked on before (or without) serve() hosting the build at /__onepipe/dashboard/.
const api = process.env.ONEPIPE_DASHBOARD_API ?? 'http://127.0.0.1:3000'
const proxy = Object.fromEntries(
  ['^/__onepipe/(?!dashboard/)', '^/health$', '^/ready$'].map((path) => [path, { target: api, changeOrigin: false }]),
)

export default defineConfig({
  base: '/__onepipe/dashboard/',
  plugins: [react(), tailwindcss()],
  build: { outDir: 'dist', assetsDir: 'assets', emptyOutDir: true, sourcemap: false },
  server: { proxy },
  preview: { proxy },
})
