#!/usr/bin/env node
// onepipe-workers-conformance: checks a control plane's worker API against
// docs/protocol/workers.md. Plain ESM on Node built-ins so `npx` can run it
// from the published package without a build step.
import { parseArgs } from 'node:util'
import { runConformance } from './suite.mjs'

const usage = `Usage: onepipe-workers-conformance --url <base> --key <apiKey> --other-key <apiKey>

Checks a OnePipe control plane's worker API (docs/protocol/workers.md).

  --url <base>         the worker API's base URL, e.g. http://localhost:8081
  --key <apiKey>       an API key of the application the suite works as
  --other-key <apiKey> an API key of another application (isolation checks)
  --only <text>        run only the cases whose name contains <text>
  --concurrency <n>    cases run at once (default 4)
  -h, --help           print this help

Every case uses handler names of its own, so real workers never see its jobs.
Exits 0 when every case passes, 1 when one fails, 2 on a usage error.
`

// exitCode rather than exit(): exit() may cut off output still queued for a pipe.
process.exitCode = await main()

async function main() {
  let values
  try {
    ;({ values } = parseArgs({
      options: {
        url: { type: 'string' },
        key: { type: 'string' },
        'other-key': { type: 'string' },
        only: { type: 'string' },
        concurrency: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }))
  } catch (e) {
    process.stderr.write(`onepipe-workers-conformance: ${e instanceof Error ? e.message : String(e)}\n\n${usage}`)
    return 2
  }

  if (values.help) {
    process.stdout.write(usage)
    return 0
  }

  const missing = ['url', 'key', 'other-key'].filter((k) => !values[k])
  const concurrency = values.concurrency === undefined ? 4 : Number(values.concurrency)
  const problems = [
    ...missing.map((k) => `--${k} is required`),
    ...(Number.isInteger(concurrency) && concurrency >= 1 ? [] : ['--concurrency must be a whole number of at least 1']),
    ...(values.url && !URL.canParse(values.url) ? [`--url ${values.url} is not a URL`] : []),
  ]
  if (problems.length > 0) {
    process.stderr.write(`onepipe-workers-conformance: ${problems.join('; ')}\n\n${usage}`)
    return 2
  }

  const started = Date.now()
  try {
    const { passed, failed } = await runConformance({
      baseUrl: values.url,
      apiKey: values.key,
      otherApiKey: values['other-key'],
      only: values.only,
      concurrency,
      log: (line) => process.stdout.write(`${line}\n`),
    })
    const seconds = ((Date.now() - started) / 1000).toFixed(1)
    process.stdout.write(`\n${passed} passed, ${failed.length} failed (${seconds} s)\n`)
    for (const f of failed) process.stdout.write(`FAIL ${f.name}: ${f.error}\n`)
    return failed.length === 0 ? 0 : 1
  } catch (e) {
    process.stderr.write(`onepipe-workers-conformance: ${e instanceof Error ? e.message : String(e)}\n`)
    return 1
  }
}
