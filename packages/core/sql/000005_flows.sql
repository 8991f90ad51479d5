-- Flows: append-only event logs. Offsets come from a per-flow counter row
-- that the append statement increments: the row lock it takes serializes
-- appenders of one flow across every instance, so an offset becomes visible
-- only after every smaller offset is committed. Readers that page by
-- offset therefore never see a gap that fills in later (a plain sequence
-- would let offset 6 commit before 5). Each append statement takes a whole
-- batch, so the lock costs one commit per batch, not per event.
CREATE TABLE _onepipe_flows (
  flow_name text PRIMARY KEY,
  -- The last offset handed out; offsets start at 1 and never repeat, even
  -- after retention deleted the events.
  last_offset bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE _onepipe_flow_events (
  id text PRIMARY KEY,
  flow_name text NOT NULL,
  data jsonb NOT NULL,
  -- Milliseconds since the epoch on the database clock.
  timestamp bigint NOT NULL,
  offset_seq bigint NOT NULL,
  CONSTRAINT _onepipe_flow_events_offset UNIQUE (flow_name, offset_seq)
);

-- Retention by age.
CREATE INDEX _onepipe_flow_events_age ON _onepipe_flow_events (flow_name, timestamp);
