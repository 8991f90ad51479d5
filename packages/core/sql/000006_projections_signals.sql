-- Projections: the folded state and the offset it covers live in one row,
-- written in the same transaction as the entity rows, so a crash never
-- leaves state that includes an event its offset does not (or the reverse).
CREATE TABLE _onepipe_projection_state (
  name text PRIMARY KEY,
  state jsonb NOT NULL,
  -- Text so flows whose offsets are opaque (the streams server) fit too.
  last_offset text NOT NULL,
  event_count bigint NOT NULL DEFAULT 0,
  -- Bumped on every commit; subscribers compare it to what they saw.
  version bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE _onepipe_projection_entities (
  projection_name text NOT NULL,
  entity_key text NOT NULL,
  state jsonb NOT NULL,
  -- The projection version that last changed this entity, so subscribers
  -- can fetch exactly the entities changed since the version they saw.
  version bigint NOT NULL,
  PRIMARY KEY (projection_name, entity_key)
);
CREATE INDEX _onepipe_projection_entities_version ON _onepipe_projection_entities (projection_name, version);

-- Signals on PostgreSQL: one versioned value per name; every write is a
-- compare-and-swap on version.
CREATE TABLE _onepipe_signals (
  name text PRIMARY KEY,
  value jsonb NOT NULL,
  version bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
