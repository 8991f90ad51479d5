import { useQuery, useQueryClient } from '@tanstack/react-query'
import { useEventStream } from '../../api/events'
import { signalsApi } from '../../api/ops'
import { CatalogPage } from '../../components/CatalogPage'
import { ErrorAlert } from '../../components/ErrorAlert'
import { Json } from '../../components/Json'
import { Loading, Section } from '../../components/ui'

function SignalValue({ name }: { name: string }) {
  const qc = useQueryClient()
  const key = ['signals', name]
  const q = useQuery({ queryKey: key, queryFn: () => signalsApi.read(name) })
  const state = useEventStream(signalsApi.streamUrl(name), {
    on: {
      message: (data) => {
        const v = data as { value: unknown; version: number }
        qc.setQueryData(key, (old: { version: number } | undefined) => (old && old.version > v.version ? old : v))
      },
    },
  })
  return (
    <Section title={`Signal ${name}`} testId="signal">
      <p className="mb-2 text-sm text-gray-700">
        Version <span className="font-mono" data-testid="signal-version">{q.data?.version ?? '—'}</span>
        <span className="ml-3" data-testid="signal-live" data-state={state}>
          {state === 'live' ? 'live' : 'connecting…'}
        </span>
      </p>
      <ErrorAlert error={q.error} />
      {q.isPending ? <Loading /> : <Json value={q.data?.value} testId="signal-value" label={`Value of ${name}`} />}
    </Section>
  )
}

export function Signals({ name, onName }: { name: string | undefined; onName: (n: string) => void }) {
  return (
    <CatalogPage title="Signals" kind="signals" label="Signal" chosen={name} onName={onName} testId="signal-select">
      {(n) => <SignalValue key={n} name={n} />}
    </CatalogPage>
  )
}
