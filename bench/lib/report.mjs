// Shared helpers for OnePipe's benchmarks: child servers and a ratio table.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'

const taskset = ['/usr/bin/taskset', '/bin/taskset'].find((p) => existsSync(p))

/**
 * On a machine with two or more cores, keeps the load generator (this
 * process) on core 0 and servers on core 1, so the two never compete for
 * one core and both peers get the same conditions.
 */
export function pinLoadGenerator() {
  if (!taskset || availableParallelism() < 2) return false
  execFileSync(taskset, ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' })
  return true
}

/** Starts `node file` (pinned to core 1 when possible) and resolves with { port, stop } once it prints PORT=<n>. */
export function startServer(file, env = {}) {
  return new Promise((resolve, reject) => {
    const pin = taskset && availableParallelism() >= 2
    const [cmd, args] = pin ? [taskset, ['-c', '1', process.execPath, file]] : [process.execPath, [file]]
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    const timer = setTimeout(() => reject(new Error(`${file} did not start: ${out}`)), 90_000)
    child.stdout.on('data', (d) => {
      out += d
      const m = /PORT=(\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({
          port: Number(m[1]),
          output: out,
          stop: () =>
            new Promise((r) => {
              child.once('exit', r)
              child.kill('SIGTERM')
            }),
        })
      }
    })
    child.once('exit', (code) => reject(new Error(`${file} exited ${code}: ${out}`)))
  })
}

/**
 * Prints rows of { name, ours, peer, unit, higherIsBetter } with the ratio
 * ours/peer. A row whose `peer` is null or undefined has no peer (it shows
 * "—" and no ratio); a string value is printed as it is.
 */
export function printTable(title, peerName, rows) {
  const lines = [`\n${title}`, `| measure | OnePipe | ${peerName} | OnePipe/${peerName} |`, '|---|---:|---:|---:|']
  for (const r of rows) {
    const unit = r.unit ? ` ${r.unit}` : ''
    const cell = (v) => (v === null || v === undefined ? '—' : typeof v === 'string' ? v : `${fmt(v)}${unit}`)
    const numeric = typeof r.ours === 'number' && typeof r.peer === 'number'
    const ratio = !numeric ? '—' : r.peer === 0 ? 'n/a' : `${(r.ours / r.peer).toFixed(2)}${r.higherIsBetter === false ? ' (lower is better)' : ''}`
    lines.push(`| ${r.name} | ${cell(r.ours)} | ${cell(r.peer)} | ${ratio} |`)
  }
  console.log(lines.join('\n'))
}

function fmt(n) {
  if (!Number.isFinite(n)) return String(n)
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2)
}

/**
 * Runs autocannon as its own process (pinned to core 0 when possible) and
 * returns its JSON result: the load generator never shares a process, or a
 * core, with the server it measures.
 */
export function autocannon({ url, method = 'GET', body, headers = {}, connections = 50, duration = 5 }) {
  const cli = fileURLToPath(new URL('../node_modules/autocannon/autocannon.js', import.meta.url))
  const bin = existsSync(cli) ? cli : fileURLToPath(new URL('../../node_modules/autocannon/autocannon.js', import.meta.url))
  const args = [bin, '--json', '-c', String(connections), '-d', String(duration), '-m', method]
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}=${v}`)
  if (body !== undefined) args.push('-b', body)
  args.push(url)
  const pin = taskset && availableParallelism() >= 2
  const [cmd, argv] = pin ? [taskset, ['-c', '0', process.execPath, ...args]] : [process.execPath, args]
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`autocannon exited ${code}: ${err}`))
      try {
        resolve(JSON.parse(out))
      } catch (e) {
        reject(new Error(`autocannon printed no JSON: ${out.slice(0, 500)} ${err.slice(0, 500)}`))
      }
    })
  })
}
