-- Per-handler policies (000011's _onepipe_handler_policies), now enforced
-- at claim time (packages/pipelines/src/engine/policies.ts).

-- The breaker counts calls in a tumbling window of this length; 000011
-- stored the threshold and the cooldown but not the window.
ALTER TABLE _onepipe_handler_policies ADD COLUMN breaker_window_ms integer;

-- A policy set for every application lives in the row of app_id '*'. Each
-- application that claims the handler gets a copy of its own (inherited),
-- because the running count, the token bucket and the breaker belong to
-- one application; the copy follows later changes of the '*' row, and an
-- application's own policy (PUT /handlers/{name}/policy) replaces it.
ALTER TABLE _onepipe_handler_policies ADD COLUMN inherited boolean NOT NULL DEFAULT false;

-- A limited handler's claim counts its Running stages under the policy
-- row's lock: this keeps that count to the handler's own rows instead of
-- every running attempt of every handler.
CREATE INDEX _onepipe_pipeline_stages_running_handler ON _onepipe_pipeline_stages (app_id, handler) WHERE status = 'Running';
