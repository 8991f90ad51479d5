import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { runConformance } from '../conformance/suite.mjs'
import { startPlane, type Plane } from './helpers.js'

// The worker protocol's conformance suite (what onepipe-workers-conformance
// runs against a deployment) against a control plane of this checkout. A short
// lease and sweep keep the lease and timeout cases to seconds; the lease stays
// above the suite's 1.5 s stage timeout so that case ends by its timeout.
let p: Plane
beforeAll(async () => {
  p = await startPlane({ lease: '3s', sweep: '200ms' })
})
afterAll(async () => {
  await p.cleanup()
})

it('the control plane passes the worker protocol conformance suite', async () => {
  const lines: string[] = []
  const result = await runConformance({ baseUrl: p.base, apiKey: p.keyA, otherApiKey: p.keyB, log: (line) => lines.push(line) })
  const report = result.failed.map((f) => `${f.name}: ${f.error}`).join('\n')
  expect(result.failed, `${result.failed.length} case(s) failed:\n${report}`).toEqual([])
  expect(result.passed).toBe(lines.length)
}, 600_000)

const cli = fileURLToPath(new URL('../conformance/cli.mjs', import.meta.url))
const runCli = async (args: string[]): Promise<{ code: number; out: string; err: string }> => {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [cli, ...args], { timeout: 120_000 })
    return { code: 0, out: stdout, err: stderr }
  } catch (e) {
    // A non-zero exit is an answer here; only a failure to run the CLI at all is an error.
    const x = e as { code?: unknown; stdout?: string; stderr?: string }
    if (typeof x.code !== 'number') throw e
    return { code: x.code, out: x.stdout ?? '', err: x.stderr ?? '' }
  }
}

it('the CLI prints a line per case and a summary, exits 0 when they pass and 2 on a usage error', async () => {
  const ok = await runCli(['--url', p.base, '--key', p.keyA, '--other-key', p.keyB, '--only', 'malformed JSON'])
  expect(ok.out).toMatch(/^ok POST \/pipelines: malformed JSON is a 400$/m)
  expect(ok.out).toMatch(/^1 passed, 0 failed/m)
  expect(ok.code).toBe(0)
  const bad = await runCli(['--url', p.base, '--key', 'op_nope_nope', '--other-key', p.keyB, '--only', 'malformed JSON'])
  expect(bad.out).toMatch(/^FAIL POST \/pipelines: malformed JSON is a 400: /m)
  expect(bad.code).toBe(1)
  const usage = await runCli(['--url', p.base])
  expect(usage.code).toBe(2)
  expect(usage.err).toMatch(/--key is required/)
  expect(usage.err).toMatch(/^Usage: onepipe-workers-conformance/m)
  const help = await runCli(['--help'])
  expect([help.code, help.out]).toEqual([0, expect.stringMatching(/^Usage: onepipe-workers-conformance/)])
})
