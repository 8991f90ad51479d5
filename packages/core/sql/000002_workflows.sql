-- Workflows: one row per run, one row per recorded step, queued signals.
--
-- Ownership: a run is executed by at most one process at a time. `owner`
-- names it, `fence` is bumped on every claim, and every write a run makes
-- (step result, sleep, completion) checks `fence` in the same statement, so a
-- process that lost its lease (paused, partitioned) can never record anything.
-- `heartbeat_at` is renewed by the owner; a run whose heartbeat is older than
-- the stale limit is claimed by another process.
--
-- Durable time: a run that sleeps or waits has no owner and a `wake_at` (an
-- absolute database time); executors claim runs with `wake_at <= now()`.
CREATE TABLE _onepipe_workflows (
  workflow_id text PRIMARY KEY,
  workflow_name text NOT NULL,
  -- pending (never claimed), running (claimed at least once, incl. sleeping
  -- or waiting), completed, failed, cancelled.
  status text NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
  input jsonb,
  output jsonb,
  error jsonb,
  parent_id text,
  owner text,
  fence bigint NOT NULL DEFAULT 0,
  heartbeat_at timestamptz,
  wake_at timestamptz,
  deadline_at timestamptz,
  -- Bumped by every signal and child completion: a run going to sleep checks
  -- it did not miss one in the same statement that releases its lease.
  signal_seq bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz
);
-- Runnable: unowned and due.
CREATE INDEX _onepipe_workflows_due ON _onepipe_workflows (wake_at) WHERE owner IS NULL AND status IN ('pending', 'running');
-- Owned: stale-lease scan.
CREATE INDEX _onepipe_workflows_owned ON _onepipe_workflows (heartbeat_at) WHERE owner IS NOT NULL AND status IN ('pending', 'running');
CREATE INDEX _onepipe_workflows_list ON _onepipe_workflows (workflow_name, status, created_at DESC);
CREATE INDEX _onepipe_workflows_parent ON _onepipe_workflows (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE _onepipe_workflow_steps (
  id text PRIMARY KEY,
  workflow_id text NOT NULL REFERENCES _onepipe_workflows (workflow_id) ON DELETE CASCADE,
  -- Stable per run: the step name plus its call order (`charge`, `charge#2`…).
  step_name text NOT NULL,
  -- completed, failed, or waiting (a signal wait holding its deadline).
  status text NOT NULL CHECK (status IN ('completed', 'failed', 'waiting')),
  result jsonb,
  error jsonb,
  attempts integer NOT NULL DEFAULT 1,
  -- The fence of the owner that recorded it (audit of who wrote what).
  fence bigint NOT NULL,
  wake_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (workflow_id, step_name)
);

CREATE TABLE _onepipe_workflow_signals (
  seq bigserial PRIMARY KEY,
  workflow_id text NOT NULL REFERENCES _onepipe_workflows (workflow_id) ON DELETE CASCADE,
  name text NOT NULL,
  data jsonb,
  -- The step that received it; set in the transaction that records that step.
  consumed_by text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX _onepipe_workflow_signals_queue ON _onepipe_workflow_signals (workflow_id, name, seq) WHERE consumed_by IS NULL;
