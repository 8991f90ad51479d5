-- Cron: one row per job, one row per execution, one lease per job.
--
-- Exactly-once per tick: an execution row is INSERTed before the handler
-- runs, and UNIQUE (job_name, scheduled_time) makes that insert the single
-- decision of who runs a tick. The insert is also fenced: it only succeeds
-- while the inserting instance holds the job's lease with the current
-- fencing token (see the scheduler), so a paused instance that wakes up
-- after losing its lease cannot claim a tick either.
CREATE TABLE _onepipe_cron_jobs (
  job_name text PRIMARY KEY,
  schedule text NOT NULL,
  timezone text,
  -- Ticks before this instant were never due (no catch-up into the past
  -- before the job first existed).
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE _onepipe_cron_executions (
  execution_id text PRIMARY KEY,
  job_name text NOT NULL REFERENCES _onepipe_cron_jobs (job_name) ON DELETE CASCADE,
  scheduled_time timestamptz NOT NULL,
  -- scheduled | catch_up | manual
  kind text NOT NULL,
  -- queued (manual, waiting for the lease holder) | running | completed | failed
  -- | abandoned (the instance that claimed it lost its lease before finishing)
  status text NOT NULL,
  instance_id text,
  fencing_token bigint,
  queued_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  finished_at timestamptz,
  output jsonb,
  error jsonb,
  CONSTRAINT _onepipe_cron_executions_tick UNIQUE (job_name, scheduled_time)
);

-- Manual triggers waiting for the lease holder.
CREATE INDEX _onepipe_cron_executions_queued ON _onepipe_cron_executions (job_name, queued_at) WHERE status = 'queued';

CREATE TABLE _onepipe_cron_locks (
  job_name text PRIMARY KEY,
  locked_by text NOT NULL,
  -- Incremented on every acquisition and never reset (the row is kept on
  -- release), so a higher token always means a later holder.
  fencing_token bigint NOT NULL,
  locked_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL
);
