-- queuectl's PostgreSQL schema, step 1: jobs, their attempts, the queue's config, the engines
-- attached to it, and the change counter that engines poll when they cannot LISTEN.
--
-- Applied once, in one transaction, by store/postgres_schema.py; a released step never
-- changes (a later change is a new numbered file). Every name starts with queuectl_, so the
-- queue can share a database (and its default schema) with an application's own tables.
--
-- Times are POSIX seconds in double precision, as in the SQLite store: a model's floats
-- round-trip exactly, and "now + a lease" is plain arithmetic in SQL and in Python alike.

CREATE TABLE queuectl_jobs (
    id               text PRIMARY KEY,
    -- insertion order: breaks ties of created_at for "newest first" (SQLite's rowid)
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    command          text NOT NULL,
    label            text,
    state            text NOT NULL,
    priority         bigint NOT NULL DEFAULT 0,
    max_retries      bigint NOT NULL,
    timeout          double precision,
    cwd              text NOT NULL,
    env              jsonb NOT NULL DEFAULT '{}',
    attempts         integer NOT NULL DEFAULT 0,
    runs             integer NOT NULL DEFAULT 0,
    created_at       double precision NOT NULL,
    updated_at       double precision NOT NULL,
    run_at           double precision NOT NULL,
    next_run_at      double precision NOT NULL,
    last_error       text,
    error_kind       text,
    exit_code        integer,
    started_at       double precision,
    finished_at      double precision,
    lease_owner      text,
    lease_expires_at double precision,
    pid              integer
);

-- the claim walks this in its own order and stops after its limit (see postgres.sql: claim)
CREATE INDEX queuectl_jobs_runnable ON queuectl_jobs (priority DESC, next_run_at, id)
    WHERE state IN ('pending', 'failed');
-- how many jobs are due (the claim's bound), when the next one is, and listings by due time
CREATE INDEX queuectl_jobs_due ON queuectl_jobs (next_run_at, seq)
    WHERE state IN ('pending', 'failed');
-- when the next retry is (`worker start --until-empty` waits for retries only)
CREATE INDEX queuectl_jobs_retry ON queuectl_jobs (next_run_at) WHERE state = 'failed';
-- renewals by owner and rescues by expiry touch only the running jobs
CREATE INDEX queuectl_jobs_leased ON queuectl_jobs (lease_expires_at) WHERE state = 'processing';
-- listings, newest first, of everything or of one state
CREATE INDEX queuectl_jobs_created ON queuectl_jobs (created_at, seq);
CREATE INDEX queuectl_jobs_state_created ON queuectl_jobs (state, created_at, seq);
-- purge and retention by age
CREATE INDEX queuectl_jobs_finished ON queuectl_jobs (finished_at)
    WHERE state IN ('completed', 'dead', 'canceled');

CREATE TABLE queuectl_attempts (
    job_id           text NOT NULL REFERENCES queuectl_jobs (id) ON DELETE CASCADE,
    run              integer NOT NULL,
    engine           text,
    started_at       double precision NOT NULL,
    finished_at      double precision,
    exit_code        integer,
    error            text,
    error_kind       text,
    stdout           bytea NOT NULL DEFAULT '',
    stderr           bytea NOT NULL DEFAULT '',
    stdout_truncated boolean NOT NULL DEFAULT false,
    stderr_truncated boolean NOT NULL DEFAULT false,
    -- both streams' chunks in the order written (encoded as for SQLite); NULL: unknown
    output           bytea,
    PRIMARY KEY (job_id, run)
);

CREATE TABLE queuectl_config (
    key   text PRIMARY KEY,
    value text NOT NULL  -- JSON
);

-- One row per attached engine, on any host. `machine` is hostname, boot id and pid namespace:
-- an engine on the same machine whose process is gone (pid and start time no longer match)
-- is known dead at once, without waiting for its leases to run out.
CREATE TABLE queuectl_engines (
    id           text PRIMARY KEY,
    machine      text NOT NULL,
    host         text NOT NULL,
    pid          integer NOT NULL,
    pid_started  bigint,  -- /proc/PID/stat starttime: tells a recycled pid apart
    version      text NOT NULL,
    concurrency  integer,
    started_at   double precision NOT NULL,
    heartbeat_at double precision NOT NULL
);
CREATE INDEX queuectl_engines_machine ON queuectl_engines (machine);

-- Bumped by every change that may wake an engine (enqueue, retry), in the statement that
-- sends its NOTIFY: an engine whose LISTEN connection is down polls it instead.
CREATE SEQUENCE queuectl_changes;
