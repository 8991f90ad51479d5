-- The semantic layer's `$.on` handlers (docs/semantic.md): each keeps its own
-- cursor over its Things' event flow. The cursor moves only after every event
-- up to it was handed to the handler's workflow and finished, so a handler
-- sees every matching event at least once across restarts and instances; the
-- workflow run's id is derived from the event, so a re-delivery finds the run
-- that already exists instead of running the handler again.
--
-- Event offsets become visible in commit order (an append holds its flow's
-- counter row until commit), so a cursor never moves past an offset that a
-- slower transaction would fill later.
CREATE TABLE _onepipe_semantic_cursors (
  app_name text NOT NULL,
  handler text NOT NULL,
  last_offset bigint NOT NULL,
  -- The instance moving this handler forward, until lease_until (database clock).
  owner text,
  lease_until timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (app_name, handler)
);
