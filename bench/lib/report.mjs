// Shared helpers for OnePipe's benchmarks: child servers and a ratio table.
import { spawn } from 'node:child_process'

/** Starts `node file` and resolves with { port, stop } once it prints PORT=<n>. */
export function startServer(file, env = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    const timer = setTimeout(() => reject(new Error(`${file} did not start: ${out}`)), 20_000)
    child.stdout.on('data', (d) => {
      out += d
      const m = /PORT=(\d+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({
          port: Number(m[1]),
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

/** Prints rows of { name, ours, peer, unit, higherIsBetter } with the ratio ours/peer. */
export function printTable(title, peerName, rows) {
  const lines = [`\n${title}`, `| measure | OnePipe | ${peerName} | OnePipe/${peerName} |`, '|---|---:|---:|---:|']
  for (const r of rows) {
    const ratio = r.peer === 0 ? 'n/a' : (r.ours / r.peer).toFixed(2)
    lines.push(`| ${r.name} | ${fmt(r.ours)} ${r.unit} | ${fmt(r.peer)} ${r.unit} | ${ratio}${r.higherIsBetter === false ? ' (lower is better)' : ''} |`)
  }
  console.log(lines.join('\n'))
}

function fmt(n) {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2)
}
