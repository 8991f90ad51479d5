-- Channel idempotency: one row per (channel, key). A call claims the key by
-- inserting a `pending` row carrying its owner token and a lease; duplicates
-- wait (LISTEN/NOTIFY) for `completed`/`failed`, and take the row over only
-- when the lease ran out (the owner died). `input_hash` detects the same key
-- reused with different input.
CREATE TABLE _onepipe_channel_idempotency (
  channel_name text NOT NULL,
  idempotency_key text NOT NULL,
  input_hash text NOT NULL,
  -- pending | completed | failed
  status text NOT NULL,
  result jsonb,
  error jsonb,
  -- A fresh random token per claim: only the claimant may renew or finish it.
  owner text,
  lease_expires_at timestamptz,
  -- Set by a duplicate that waits, so the owner NOTIFYs only then (a NOTIFY
  -- serializes commits database-wide; most calls have nobody waiting).
  waiters boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (channel_name, idempotency_key)
);

CREATE INDEX _onepipe_channel_idempotency_expiry ON _onepipe_channel_idempotency (expires_at);

-- Executed calls (the handler ran), for history().
CREATE TABLE _onepipe_channel_calls (
  id bigserial PRIMARY KEY,
  channel_name text NOT NULL,
  idempotency_key text,
  -- completed | failed
  status text NOT NULL,
  attempts integer NOT NULL,
  duration_ms integer NOT NULL,
  error jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX _onepipe_channel_calls_recent ON _onepipe_channel_calls (channel_name, id DESC);
