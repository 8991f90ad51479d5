-- Every OnePipe process registers here at start and heartbeats, so leases
-- (workflows, cron, channels) can name their owner and the dashboard can
-- show which instances are alive.
CREATE TABLE _onepipe_instances (
  instance_id text PRIMARY KEY,
  hostname text NOT NULL,
  pid integer NOT NULL,
  version text NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now()
);
