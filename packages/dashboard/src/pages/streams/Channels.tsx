import { useQuery } from '@tanstack/react-query'
import { channelsApi } from '../../api/ops'
import { CatalogPage } from '../../components/CatalogPage'
import { Loaded } from '../../components/Loaded'
import { errorText } from '../../components/Json'
import { StatusBadge } from '../../components/Status'
import { Table, Td, TdTime } from '../../components/Table'
import { Section } from '../../components/ui'

function ChannelActivity({ name, idempotent }: { name: string; idempotent: boolean }) {
  const calls = useQuery({ queryKey: ['channels', name, 'calls'], queryFn: () => channelsApi.calls(name), refetchInterval: 5000 })
  const keys = useQuery({ queryKey: ['channels', name, 'keys'], queryFn: () => channelsApi.keys(name), refetchInterval: 5000, enabled: idempotent })
  return (
    <>
      <Section title="Recent calls">
        <Loaded query={calls}>
          <Table columns={['Time', 'Outcome', 'Duration', 'Idempotency key', 'Error']} empty="No calls yet." caption={`Calls of ${name}`} testId="channel-calls">
            {(calls.data ?? []).map((c) => (
              <tr key={c.id} data-testid="channel-call-row" data-outcome={c.outcome}>
                <TdTime at={c.at} />
                <Td>
                  <StatusBadge status={c.outcome} />
                </Td>
                <Td>{c.durationMs === null || c.durationMs === undefined ? '—' : `${c.durationMs} ms`}</Td>
                <Td className="font-mono text-xs">{c.key ?? '—'}</Td>
                <Td className="max-w-xs text-xs text-red-900">{errorText(c.error)}</Td>
              </tr>
            ))}
          </Table>
        </Loaded>
      </Section>
      {idempotent && (
        <Section title="Idempotency keys">
          <Loaded query={keys}>
            <Table columns={['Key', 'State', 'Created', 'Expires']} empty="No keys." caption={`Idempotency keys of ${name}`} testId="channel-keys">
              {(keys.data ?? []).map((k) => (
                <tr key={k.key} data-testid="channel-key-row" data-state={k.state}>
                  <Td className="font-mono text-xs">{k.key}</Td>
                  <Td>
                    <StatusBadge status={k.state} />
                  </Td>
                  <TdTime at={k.createdAt} />
                  <TdTime at={k.expiresAt} />
                </tr>
              ))}
            </Table>
          </Loaded>
        </Section>
      )}
    </>
  )
}

export function Channels({ name, onName }: { name: string | undefined; onName: (n: string) => void }) {
  return (
    <CatalogPage title="Channels" kind="channels" label="Channel" chosen={name} onName={onName} testId="channel-select">
      {(n, catalog) => <ChannelActivity key={n} name={n} idempotent={catalog.channels.find((c) => c.name === n)?.idempotent ?? false} />}
    </CatalogPage>
  )
}
