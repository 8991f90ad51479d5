-- Streams server, PostgreSQL store (@onepipe/streams `postgres` store).
-- One row per stream (its meta document, owned by the streams protocol
-- layer) and one row per record. A batch of appends to one stream is one
-- transaction under a per-stream advisory lock: offsets (seq = record
-- number, bytes = payload bytes before the record) are assigned inside it,
-- so they are unique and gapless per stream across every process, and a
-- record becomes visible together with the meta that counts it.
CREATE TABLE _onepipe_streams (
  path text PRIMARY KEY,
  meta jsonb NOT NULL,
  -- Absolute expiry in ms since the epoch (copied from meta for the sweep), NULL = never.
  expires_at bigint
);

CREATE INDEX _onepipe_streams_expiry ON _onepipe_streams (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE _onepipe_stream_records (
  path text NOT NULL,
  seq bigint NOT NULL,
  bytes bigint NOT NULL,
  count integer NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (path, seq)
);
