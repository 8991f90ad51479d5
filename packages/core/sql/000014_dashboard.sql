-- What the dashboard (docs/dashboard.md) and its API need.

-- A paused cron job claims no scheduled tick (manual runs still run, as a
-- paused schedule in Temporal can still be triggered). Resuming does not
-- catch up the ticks that fell while paused: the scheduler counts due ticks
-- from resumed_at when it is later than the last recorded one.
ALTER TABLE _onepipe_cron_jobs ADD COLUMN paused_at timestamptz;
ALTER TABLE _onepipe_cron_jobs ADD COLUMN resumed_at timestamptz;

-- Operators list every application's pipelines newest first, with a keyset
-- cursor of (created_at, id); by status too.
CREATE INDEX _onepipe_pipelines_all_recent ON _onepipe_pipelines (created_at DESC, id DESC);
CREATE INDEX _onepipe_pipelines_status_recent ON _onepipe_pipelines (status, created_at DESC, id DESC);
