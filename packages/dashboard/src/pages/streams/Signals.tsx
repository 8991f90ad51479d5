import { useQuery, useQueryClient } from '@tanstack/react-query'
import type { FormEvent } from 'react'
import { useEventStream } from '../../api/events'
import { signalsApi } from '../../api/ops'
import { useRights } from '../../api/session'
import { useAction } from '../../components/action'
import { CatalogPage } from '../../components/CatalogPage'
import { ErrorAlert } from '../../components/ErrorAlert'
import { Json } from '../../components/Json'
import { useJsonInput } from '../../components/json-input'
import { JsonField } from '../../components/JsonField'
import { Loaded } from '../../components/Loaded'
import { Button, Section } from '../../components/ui'

type Value = { value: unknown; version: number }

/**
 * A new value for an operator to send. The text starts as the value shown when
 * the form opened and is the reader's from then on: a change that streams in
 * meanwhile updates the value above, never what is being typed.
 */
function SetSignal({ name, current, onSet }: { name: string; current: unknown; onSet: (v: Value) => void }) {
  const input = useJsonInput(JSON.stringify(current, null, 2) ?? '')
  const set = useAction((value: unknown) => signalsApi.set(name, value), { onSuccess: onSet })
  const submit = (e: FormEvent) => {
    e.preventDefault()
    set.reset()
    if (input.check() && input.parsed.ok) set.mutate(input.parsed.value)
  }
  return (
    <Section title="Set value">
      <form onSubmit={submit} className="max-w-xl space-y-3" data-testid="signal-set-form" aria-label={`Set the value of ${name}`}>
        <JsonField label="New value (JSON)" hint="Replaces the whole value; the signal's schema decides what it accepts." rows={5} input={input} testId="signal-set-value" />
        <ErrorAlert error={set.error} testId="signal-set-error" />
        {set.data && (
          <p role="status" className="text-sm text-green-800" data-testid="signal-set-done">
            Set: now version {set.data.version}.
          </p>
        )}
        <Button type="submit" variant="primary" disabled={set.isPending} data-testid="signal-set-submit">
          {set.isPending ? 'Setting…' : 'Set value'}
        </Button>
      </form>
    </Section>
  )
}

function SignalValue({ name }: { name: string }) {
  const { act } = useRights()
  const qc = useQueryClient()
  const key = ['signals', name]
  const q = useQuery({ queryKey: key, queryFn: () => signalsApi.read(name) })
  // The stream and a set's own answer race: the higher version is the newer value.
  const show = (v: Value) => qc.setQueryData(key, (old: Value | undefined) => (old && old.version > v.version ? old : v))
  const state = useEventStream(signalsApi.streamUrl(name), { on: { message: (data) => show(data as Value) } })
  return (
    <>
      <Section title={`Signal ${name}`} testId="signal">
        <p className="mb-2 text-sm text-gray-700">
          Version <span className="font-mono" data-testid="signal-version">{q.data?.version ?? '—'}</span>
          <span className="ml-3" data-testid="signal-live" data-state={state}>
            {state === 'live' ? 'live' : 'connecting…'}
          </span>
        </p>
        <Loaded query={q}>
          <Json value={q.data?.value} testId="signal-value" label={`Value of ${name}`} />
        </Loaded>
      </Section>
      {act && q.data && <SetSignal name={name} current={q.data.value} onSet={show} />}
    </>
  )
}

export function Signals({ name, onName }: { name: string | undefined; onName: (n: string) => void }) {
  return (
    <CatalogPage title="Signals" kind="signals" label="Signal" chosen={name} onName={onName} testId="signal-select">
      {(n) => <SignalValue key={n} name={n} />}
    </CatalogPage>
  )
}
