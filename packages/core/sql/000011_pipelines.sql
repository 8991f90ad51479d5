-- Pipelines: runs of stages on external workers (docs/pipelines.md,
-- docs/protocol/workers.md). PostgreSQL is the source of truth for every
-- status; a stage is handed out by one UPDATE … FOR UPDATE SKIP LOCKED, and
-- every later call about that attempt must name its execution id (the
-- fencing token), so a stale attempt can change nothing.

-- One row per pipeline run. `app_id` is the application (auth) it belongs
-- to: every query of the external API is scoped by it.
CREATE TABLE _onepipe_pipelines (
  id uuid PRIMARY KEY,
  app_id text NOT NULL,
  name text NOT NULL,
  -- The code template it came from (Pipeline.create(name)), null when posted ad hoc.
  template text,
  -- Running | Completed | Failed | Cancelled
  status text NOT NULL,
  keywords text[] NOT NULL DEFAULT '{}',
  input jsonb,
  -- Context items: merged by every ack that sends some, handed to every later stage.
  context jsonb NOT NULL DEFAULT '{}',
  idempotency_key text,
  -- sha256 of the request that created it, so the same key with another body is a 409.
  request_hash text,
  traceparent text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);

CREATE UNIQUE INDEX _onepipe_pipelines_idem ON _onepipe_pipelines (app_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX _onepipe_pipelines_recent ON _onepipe_pipelines (app_id, created_at DESC);

-- One row per stage; its current attempt lives on the row (execution_id,
-- lease, deadline), earlier attempts in _onepipe_stage_attempts.
CREATE TABLE _onepipe_pipeline_stages (
  id uuid PRIMARY KEY,
  pipeline_id uuid NOT NULL REFERENCES _onepipe_pipelines (id) ON DELETE CASCADE,
  app_id text NOT NULL,
  position integer NOT NULL,
  name text NOT NULL,
  handler text NOT NULL,
  input jsonb,
  depends_on text[] NOT NULL DEFAULT '{}',
  parallel_with text[] NOT NULL DEFAULT '{}',
  -- How many of depends_on are not yet satisfied: 0 makes the stage Pending.
  waiting_on integer NOT NULL,
  max_retries integer NOT NULL,
  retry_interval_ms integer NOT NULL,
  max_retry_interval_ms integer NOT NULL,
  -- fixed | linear | exponential
  backoff text NOT NULL,
  -- Per attempt; null for none.
  timeout_ms integer,
  run_next_if_failed boolean NOT NULL DEFAULT false,
  requires_approval boolean NOT NULL DEFAULT false,
  -- NotStarted | Pending | Running | RetryScheduled | AwaitingApproval | Completed | Failed | Skipped | Cancelled
  status text NOT NULL,
  attempt integer NOT NULL DEFAULT 0,
  -- Attempts that ended because their worker stopped renewing the lease (it
  -- died): handed out again without spending a retry, a few times at most,
  -- so a job that kills every worker that takes it still ends.
  lease_expiries integer NOT NULL DEFAULT 0,
  -- The current attempt's fencing token; a new one for every attempt.
  execution_id uuid,
  worker_id text,
  -- When a Pending stage may be handed out / a RetryScheduled one becomes Pending.
  ready_at timestamptz,
  lease_expires_at timestamptz,
  deadline_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz,
  output jsonb,
  error jsonb,
  approval jsonb,
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (pipeline_id, name)
);

-- The claim: the oldest ready stages of some handlers of one application.
CREATE INDEX _onepipe_pipeline_stages_ready ON _onepipe_pipeline_stages (app_id, handler, ready_at) WHERE status = 'Pending';
-- The watchdog: running attempts by lease and deadline, retries by due time.
CREATE INDEX _onepipe_pipeline_stages_running ON _onepipe_pipeline_stages (lease_expires_at) WHERE status = 'Running';
CREATE INDEX _onepipe_pipeline_stages_retry ON _onepipe_pipeline_stages (ready_at) WHERE status = 'RetryScheduled';
CREATE UNIQUE INDEX _onepipe_pipeline_stages_exec ON _onepipe_pipeline_stages (execution_id) WHERE execution_id IS NOT NULL;
CREATE INDEX _onepipe_pipeline_stages_pipeline ON _onepipe_pipeline_stages (pipeline_id, position);

-- Every attempt ever handed out, so a stale execution id is told apart from
-- an unknown one (409 against 404) and the dashboard shows the history.
CREATE TABLE _onepipe_stage_attempts (
  execution_id uuid PRIMARY KEY,
  stage_id uuid NOT NULL REFERENCES _onepipe_pipeline_stages (id) ON DELETE CASCADE,
  app_id text NOT NULL,
  attempt integer NOT NULL,
  worker_id text,
  started_at timestamptz NOT NULL DEFAULT now(),
  ended_at timestamptz,
  -- null while it runs; completed | failed | timed_out | lease_expired | cancelled | superseded
  outcome text,
  error jsonb
);

CREATE INDEX _onepipe_stage_attempts_stage ON _onepipe_stage_attempts (stage_id, attempt);

CREATE TABLE _onepipe_pipeline_logs (
  id bigserial PRIMARY KEY,
  app_id text NOT NULL,
  pipeline_id uuid NOT NULL,
  stage_id uuid,
  execution_id uuid,
  level text NOT NULL,
  message text NOT NULL,
  fields jsonb,
  at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX _onepipe_pipeline_logs_pipeline ON _onepipe_pipeline_logs (pipeline_id, id);

-- Workers that bootstrapped; the session token is stored only as a hash.
CREATE TABLE _onepipe_workers (
  id uuid PRIMARY KEY,
  app_id text NOT NULL,
  name text NOT NULL,
  handlers text[] NOT NULL,
  concurrency integer NOT NULL,
  version text,
  host text,
  session_hash text NOT NULL,
  -- active | draining | stopped
  status text NOT NULL,
  drain boolean NOT NULL DEFAULT false,
  in_flight integer NOT NULL DEFAULT 0,
  cpu double precision,
  memory_bytes bigint,
  lag_ms integer,
  started_at timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  stopped_at timestamptz
);

CREATE INDEX _onepipe_workers_app ON _onepipe_workers (app_id, heartbeat_at DESC);

CREATE TABLE _onepipe_worker_events (
  id bigserial PRIMARY KEY,
  app_id text NOT NULL,
  worker_id uuid NOT NULL,
  type text NOT NULL,
  data jsonb,
  at timestamptz NOT NULL
);

CREATE INDEX _onepipe_worker_events_worker ON _onepipe_worker_events (worker_id, id);

-- Per-handler policies, enforced across replicas at claim time: a
-- concurrency limit, a token bucket, and a circuit breaker.
CREATE TABLE _onepipe_handler_policies (
  app_id text NOT NULL,
  handler text NOT NULL,
  max_concurrency integer,
  rate_per_second double precision,
  burst integer,
  tokens double precision,
  tokens_at timestamptz,
  breaker_threshold double precision,
  breaker_min_calls integer,
  breaker_cooldown_ms integer,
  window_calls integer NOT NULL DEFAULT 0,
  window_failures integer NOT NULL DEFAULT 0,
  window_started_at timestamptz NOT NULL DEFAULT now(),
  -- closed | open | half_open
  breaker_state text NOT NULL DEFAULT 'closed',
  breaker_until timestamptz,
  PRIMARY KEY (app_id, handler)
);

-- RabbitMQ dispatch: a stage made Pending writes its message here in the
-- same transaction; a relay publishes it with confirms and deletes it, so a
-- failed publish never strands a stage.
CREATE TABLE _onepipe_pipeline_outbox (
  id bigserial PRIMARY KEY,
  app_id text NOT NULL,
  handler text NOT NULL,
  stage_id uuid NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Control planes with a live subscriber of pipeline changes (the dashboard),
-- each renewing its row: stage changes are published (NOTIFY) only while
-- one exists, since every listening connection pays for every notification.
CREATE TABLE _onepipe_pipeline_listeners (
  instance_id text PRIMARY KEY,
  until timestamptz NOT NULL
);
