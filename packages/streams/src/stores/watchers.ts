/**
 * Listeners per stream path, for `StreamStore.watch`. Shared by the durable
 * stores; each calls `notify(path)` after a change is durable (or, for shared
 * backends, when another process announced one).
 *
 * @example
 * ```ts
 * const watchers = new PathWatchers()
 * const stop = watchers.add('flows/orders', () => console.log('changed'))
 * watchers.notify('flows/orders')
 * stop()
 * ```
 */
export class PathWatchers {
  readonly #byPath = new Map<string, Set<() => void>>()

  /** Registers a listener; returns its unsubscribe function. */
  add(path: string, listener: () => void): () => void {
    let set = this.#byPath.get(path)
    if (!set) {
      set = new Set()
      this.#byPath.set(path, set)
    }
    set.add(listener)
    return () => {
      const current = this.#byPath.get(path)
      if (!current) return
      current.delete(listener)
      if (current.size === 0) this.#byPath.delete(path)
    }
  }

  /** Whether anyone watches `path`. */
  has(path: string): boolean {
    return this.#byPath.has(path)
  }

  /** Watched paths. */
  paths(): IterableIterator<string> {
    return this.#byPath.keys()
  }

  /** Calls every listener of `path` (a copy of the set, so listeners may unsubscribe). */
  notify(path: string): void {
    const set = this.#byPath.get(path)
    if (!set) return
    for (const listener of [...set]) listener()
  }

  clear(): void {
    this.#byPath.clear()
  }
}
