/**
 * Collects the text of a streaming response (Server-Sent Events) as it
 * arrives, for tests that wait for something to appear on it.
 *
 * @example
 * ```ts
 * const live = collectText(await fetch(`${url}/__onepipe/live`, { headers }))
 * await waitFor(() => live.text().includes(pipelineId))
 * await live.stop()
 * ```
 */
export function collectText(res: Response): { text(): string; stop(): Promise<void>; ended: Promise<void> } {
  if (!res.body) throw new Error(`collectText: the response (${res.status}) has no body`)
  const reader: ReadableStreamDefaultReader<Uint8Array> = res.body.getReader()
  const decoder = new TextDecoder()
  let text = ''
  const ended = (async () => {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      text += decoder.decode(value, { stream: true })
    }
  })()
  return {
    text: () => text,
    ended,
    async stop() {
      await reader.cancel()
      await ended.catch(() => undefined)
    },
  }
}
