import dagre from '@dagrejs/dagre'
import { useMemo } from 'react'
import type { Stage } from '../../api/types'
import { toneOf } from '../../components/Status'

const W = 176
const H = 56
const PAD = 10

interface Layout {
  width: number
  height: number
  nodes: Map<string, { x: number; y: number }>
  edges: { from: string; to: string; points: { x: number; y: number }[] }[]
  groups: { x: number; y: number; w: number; h: number }[]
}

/** Parallel groups: stages tied by runInParallelWith, directly or through another member. */
function groupsOf(stages: Stage[]): string[][] {
  const parent = new Map(stages.map((s) => [s.name, s.name]))
  const find = (n: string): string => {
    const p = parent.get(n) ?? n
    return p === n ? n : find(p)
  }
  for (const s of stages) for (const o of s.runInParallelWith ?? []) if (parent.has(o)) parent.set(find(o), find(s.name))
  const by = new Map<string, string[]>()
  for (const s of stages) by.set(find(s.name), [...(by.get(find(s.name)) ?? []), s.name])
  return [...by.values()].filter((g) => g.length > 1)
}

function layout(stages: Stage[]): Layout {
  const g = new dagre.graphlib.Graph()
  g.setGraph({ rankdir: 'TB', nodesep: 28, ranksep: 44, marginx: PAD + 2, marginy: PAD + 2 })
  g.setDefaultEdgeLabel(() => ({}))
  const names = new Set(stages.map((s) => s.name))
  for (const s of stages) g.setNode(s.name, { width: W, height: H })
  for (const s of stages) for (const d of s.dependsOn) if (names.has(d)) g.setEdge(d, s.name)
  dagre.layout(g)
  const nodes = new Map<string, { x: number; y: number }>()
  for (const s of stages) {
    // dagre's node and edge labels are untyped: what layout() wrote into them is read back by name.
    const n = g.node(s.name) as { x?: number; y?: number } | undefined
    nodes.set(s.name, { x: n?.x ?? 0, y: n?.y ?? 0 })
  }
  const edges = g.edges().map((e) => ({ from: e.v, to: e.w, points: (g.edge(e) as { points?: { x: number; y: number }[] } | undefined)?.points ?? [] }))
  const groups = groupsOf(stages).map((members) => {
    const ps = members.map((m) => nodes.get(m) ?? { x: 0, y: 0 })
    const x = Math.min(...ps.map((p) => p.x)) - W / 2 - PAD
    const y = Math.min(...ps.map((p) => p.y)) - H / 2 - PAD
    return { x, y, w: Math.max(...ps.map((p) => p.x)) + W / 2 + PAD - x, h: Math.max(...ps.map((p) => p.y)) + H / 2 + PAD - y }
  })
  const gl = g.graph() as { width?: number; height?: number }
  return { width: gl.width ?? W, height: gl.height ?? H, nodes, edges, groups }
}

const path = (pts: { x: number; y: number }[]): string => pts.map((p, i) => `${i ? 'L' : 'M'}${p.x},${p.y}`).join(' ')

/** The stages and their dependencies, laid out by dagre; only the colours change while it runs. */
export function StageGraph({ stages }: { stages: Stage[] }) {
  const shape = JSON.stringify(stages.map((s) => [s.name, s.dependsOn, s.runInParallelWith]))
  // Laid out again only when the shape changes, so nodes stay put while statuses change.
  const l = useMemo(() => layout(stages), [shape])
  return (
    <div className="overflow-auto" tabIndex={0} role="group" aria-label="Stage graph" data-testid="stage-graph">
      <div className="relative" style={{ width: l.width, height: l.height }}>
        <svg className="absolute inset-0" width={l.width} height={l.height} aria-hidden="true">
          <defs>
            <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
              <path d="M0,0 L10,5 L0,10 z" fill="#4b5563" />
            </marker>
          </defs>
          {l.groups.map((b, i) => (
            <rect key={i} x={b.x} y={b.y} width={b.w} height={b.h} rx={8} fill="none" stroke="#6b7280" strokeDasharray="5 4" />
          ))}
          {l.edges.map((e) => (
            <path key={`${e.from}>${e.to}`} d={path(e.points)} fill="none" stroke="#4b5563" strokeWidth={1.5} markerEnd="url(#arrow)" />
          ))}
        </svg>
        {stages.map((s) => {
          const p = l.nodes.get(s.name)
          if (!p) return null
          return (
            <div
              key={s.id}
              data-testid="stage-node"
              data-stage={s.name}
              data-status={s.status}
              className={`absolute flex flex-col justify-center overflow-hidden rounded border-2 px-2 text-xs ${toneOf(s.status)}`}
              style={{ left: p.x - W / 2, top: p.y - H / 2, width: W, height: H }}
              title={`${s.name} (${s.handler}): ${s.status}`}
            >
              <span className="truncate font-semibold">{s.name}</span>
              <span className="truncate font-mono">{s.handler}</span>
              <span className="truncate">
                {s.status}
                {s.attempt > 1 ? ` · attempt ${s.attempt}` : ''}
              </span>
            </div>
          )
        })}
      </div>
    </div>
  )
}
