-- Every SQL statement of the SQLite store, as named blocks loaded by store/sqlite.py.
-- Times are POSIX timestamps (REAL seconds). State changes are guarded by the state they leave
-- and the lease that owns the job, so a change that no longer applies updates no row.
-- {runnable}, {cancelable} and {retryable} are the state sets of queuectl/states.py; schema
-- blocks are never templated (a migration, once released, must not change).

-- name: schema_v1
CREATE TABLE IF NOT EXISTS jobs (
    id               TEXT PRIMARY KEY,
    command          TEXT NOT NULL,
    state            TEXT NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    max_retries      INTEGER NOT NULL,
    timeout          REAL,
    cwd              TEXT NOT NULL,
    env              TEXT NOT NULL DEFAULT '{}',
    attempts         INTEGER NOT NULL DEFAULT 0,
    runs             INTEGER NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL,
    run_at           REAL NOT NULL,
    next_run_at      REAL NOT NULL,
    last_error       TEXT,
    exit_code        INTEGER,
    started_at       REAL,
    finished_at      REAL,
    lease_owner      TEXT,
    lease_expires_at REAL,
    pid              INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_runnable ON jobs (priority DESC, next_run_at, id)
    WHERE state IN ('pending', 'failed');
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (next_run_at)
    WHERE state IN ('pending', 'failed');
CREATE INDEX IF NOT EXISTS jobs_leased ON jobs (lease_expires_at)
    WHERE state = 'processing';
CREATE INDEX IF NOT EXISTS jobs_state_created ON jobs (state, created_at);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
CREATE TABLE IF NOT EXISTS attempts (
    job_id           TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    run              INTEGER NOT NULL,
    engine           TEXT,
    started_at       REAL NOT NULL,
    finished_at      REAL,
    exit_code        INTEGER,
    error            TEXT,
    stdout           BLOB NOT NULL DEFAULT x'',
    stderr           BLOB NOT NULL DEFAULT x'',
    stdout_truncated INTEGER NOT NULL DEFAULT 0,
    stderr_truncated INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, run)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS config (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID

-- name: schema_v2
ALTER TABLE jobs ADD COLUMN error_kind TEXT;
ALTER TABLE attempts ADD COLUMN error_kind TEXT

-- name: schema_v3
-- label: free text shown in listings and searched by `list --grep`; output: the attempt's
-- stdout and stderr chunks in the order they were written (encoding in store/sqlite_output.py);
-- jobs_finished serves purge and retention by age.
ALTER TABLE jobs ADD COLUMN label TEXT;
ALTER TABLE attempts ADD COLUMN output BLOB;
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at)
    WHERE state IN ('completed', 'dead', 'canceled')

-- name: schema_v4
-- Scheduling (issue 13). queue: the named queue a job belongs to (queues holds the limits and
-- pauses of those that have any); unique_key: at most one live job per key (the partial unique
-- index, states.LIVE); deps: a blocked job's parents; schedules and their ticks (cron).
ALTER TABLE jobs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
ALTER TABLE jobs ADD COLUMN unique_key TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_unique_live ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('blocked', 'pending', 'failed', 'processing');
CREATE INDEX IF NOT EXISTS jobs_queue_runnable ON jobs (queue, priority DESC, next_run_at, id)
    WHERE state IN ('pending', 'failed');
CREATE INDEX IF NOT EXISTS jobs_queue_processing ON jobs (queue) WHERE state = 'processing';
-- the claim's bound and the earliest due job per queue (store/sqlite_queues.py)
CREATE INDEX IF NOT EXISTS jobs_queue_due ON jobs (queue, next_run_at)
    WHERE state IN ('pending', 'failed');
CREATE INDEX IF NOT EXISTS jobs_queue_state ON jobs (queue, state);
CREATE TABLE IF NOT EXISTS queues (
    name        TEXT PRIMARY KEY,
    concurrency INTEGER,            -- NULL: only the engines' slots limit it
    paused      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deps (
    child  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    parent TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (child, parent)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deps_parent ON deps (parent, child);
CREATE TABLE IF NOT EXISTS schedules (
    name         TEXT PRIMARY KEY,
    cron         TEXT NOT NULL,
    tz           TEXT NOT NULL,
    no_overlap   INTEGER NOT NULL DEFAULT 0,
    spec         TEXT NOT NULL,     -- the job options, JSON
    paused       INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    last_fire_at REAL,
    last_job_id  TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS schedule_ticks (
    schedule TEXT NOT NULL,
    fire_at  REAL NOT NULL,
    job_id   TEXT,
    PRIMARY KEY (schedule, fire_at)
) WITHOUT ROWID
;
-- Dependencies: when a job ends, its blocked children move on. Completed: a child whose
-- parents have all completed becomes pending (due at its run_at, or now). Dead or canceled,
-- or deleted before it completed: its blocked children are canceled, naming it, and so on
-- down the tree (recursive_triggers is on: each child canceled fires this again).
CREATE TRIGGER IF NOT EXISTS jobs_unblock_children AFTER UPDATE OF state ON jobs
WHEN NEW.state = 'completed' AND OLD.state <> 'completed'
 AND EXISTS (SELECT 1 FROM deps WHERE parent = NEW.id)
BEGIN
    UPDATE jobs SET state = 'pending', updated_at = NEW.updated_at,
                    next_run_at = max(run_at, NEW.updated_at)
     WHERE state = 'blocked'
       AND id IN (SELECT child FROM deps WHERE parent = NEW.id)
       AND NOT EXISTS (SELECT 1 FROM deps AS d JOIN jobs AS p ON p.id = d.parent
                        WHERE d.child = jobs.id AND p.state <> 'completed');
END;
CREATE TRIGGER IF NOT EXISTS jobs_cancel_children AFTER UPDATE OF state ON jobs
WHEN NEW.state IN ('dead', 'canceled') AND OLD.state NOT IN ('dead', 'canceled')
 AND EXISTS (SELECT 1 FROM deps WHERE parent = NEW.id)
BEGIN
    UPDATE jobs SET state = 'canceled', updated_at = NEW.updated_at,
                    finished_at = NEW.updated_at, error_kind = 'canceled',
                    last_error = 'canceled: its parent ' || NEW.id || ' ended ' || NEW.state
     WHERE state = 'blocked' AND id IN (SELECT child FROM deps WHERE parent = NEW.id);
END;
CREATE TRIGGER IF NOT EXISTS jobs_deleted_parent BEFORE DELETE ON jobs
WHEN OLD.state <> 'completed' AND EXISTS (SELECT 1 FROM deps WHERE parent = OLD.id)
BEGIN
    UPDATE jobs SET state = 'canceled', finished_at = OLD.updated_at, error_kind = 'canceled',
                    last_error = 'canceled: its parent ' || OLD.id || ' was deleted'
     WHERE state = 'blocked' AND id IN (SELECT child FROM deps WHERE parent = OLD.id);
END

-- name: schema_v5
-- Jobs per (queue, state) (issue 14), kept in the transaction of each change, so that
-- `status`, `queue list` and the dashboard read a few rows instead of counting a million jobs.
-- Moves and deletes are counted by triggers on the table, so every way a job changes (the
-- dependency triggers above too, which recursive_triggers lets fire these in turn) is counted.
-- Inserts are counted by the one insert path (store/sqlite_insert.py, count_inserted), once per
-- (queue, state) of a batch: a row trigger cost 30 us a job, 70% more for a 100,000-job
-- enqueue. A row may hold 0 (readers skip it). One writer at a time holds the file, so a
-- counter row cannot be a point of contention here (PostgreSQL's can: see its migration
-- 0004). Filled from the jobs already there, under the migration's write lock. jobs_retry
-- finds the failed jobs waiting for a retry without walking the pending ones (statistics).
CREATE TABLE IF NOT EXISTS job_counts (
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (queue, state)
) WITHOUT ROWID;
INSERT INTO job_counts (queue, state, n)
SELECT queue, state, count(*) FROM jobs INDEXED BY jobs_queue_state GROUP BY queue, state;
CREATE INDEX IF NOT EXISTS jobs_retry ON jobs (next_run_at) WHERE state = 'failed';
CREATE TRIGGER IF NOT EXISTS jobs_count_update AFTER UPDATE OF state, queue ON jobs
WHEN OLD.state IS NOT NEW.state OR OLD.queue IS NOT NEW.queue
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
    INSERT INTO job_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
        ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS jobs_count_delete AFTER DELETE ON jobs
BEGIN
    UPDATE job_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
END

-- name: insert_job
-- A job whose unique key a live job holds is not inserted (the changes count says so).
INSERT INTO jobs (id, command, state, priority, max_retries, timeout, cwd, env,
                  created_at, updated_at, run_at, next_run_at, label, queue, unique_key)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ({live}) DO NOTHING

-- name: count_inserted
INSERT INTO job_counts (queue, state, n) VALUES (?, ?, ?)
    ON CONFLICT (queue, state) DO UPDATE SET n = n + excluded.n

-- name: live_with_key
SELECT id FROM jobs WHERE unique_key = ? AND state IN ({live})

-- name: insert_deps
INSERT INTO deps (child, parent)
SELECT value ->> 0, value ->> 1 FROM json_each(?)

-- name: cancel_doomed
-- New jobs with a parent that is already dead or canceled are canceled at once, naming it
-- (the trigger cancels their blocked children in turn).
UPDATE jobs
   SET state = 'canceled', finished_at = :now, error_kind = 'canceled',
       last_error = 'canceled: its parent ' || (
           SELECT p.id || ' is ' || p.state FROM deps AS d JOIN jobs AS p ON p.id = d.parent
            WHERE d.child = jobs.id AND p.state IN ('dead', 'canceled') LIMIT 1)
 WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'blocked'
   AND EXISTS (SELECT 1 FROM deps AS d JOIN jobs AS p ON p.id = d.parent
                WHERE d.child = jobs.id AND p.state IN ('dead', 'canceled'))

-- name: release_ready
-- New jobs whose parents have all completed already need not wait.
UPDATE jobs SET state = 'pending'
 WHERE id IN (SELECT value FROM json_each(:ids)) AND state = 'blocked'
   AND NOT EXISTS (SELECT 1 FROM deps AS d JOIN jobs AS p ON p.id = d.parent
                    WHERE d.child = jobs.id AND p.state <> 'completed')

-- name: get_job
SELECT * FROM jobs WHERE id = ?

-- name: list_jobs
SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?

-- name: list_jobs_in_state
SELECT * FROM jobs WHERE state = ? ORDER BY created_at DESC, rowid DESC LIMIT ?

-- name: count_by_state
-- From the counters of schema_v5: a few rows, however many jobs.
SELECT state, sum(n) FROM job_counts GROUP BY state

-- name: existing_ids
SELECT id FROM jobs WHERE id IN (SELECT value FROM json_each(?))

-- name: list_attempts
SELECT * FROM attempts WHERE job_id = ? ORDER BY run

-- name: retry_dead
UPDATE jobs
   SET state = 'pending', attempts = 0, next_run_at = :now, updated_at = :now,
       last_error = NULL, exit_code = NULL, error_kind = NULL
 WHERE id = :id AND state IN ({retryable})

-- name: retry_all_dead
UPDATE jobs
   SET state = 'pending', attempts = 0, next_run_at = :now, updated_at = :now,
       last_error = NULL, exit_code = NULL, error_kind = NULL
 WHERE state IN ({retryable})
RETURNING id

-- name: get_config
SELECT key, value FROM config

-- name: set_config
INSERT INTO config (key, value) VALUES (?, ?)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value

-- name: is_paused
-- The queue's pause lives in the config table under a key that is no config key (so that
-- `config list` never shows it and `config set` refuses it): 'true' while paused.
SELECT 1 FROM config WHERE key = 'internal:paused' AND value = 'true'

-- name: set_paused
INSERT INTO config (key, value) VALUES ('internal:paused', ?)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value

-- name: count_due
-- How many jobs are runnable now, counted only up to :limit (a bounded scan of jobs_due);
-- none while the queue is paused (one primary-key lookup in config).
SELECT count(*) FROM (SELECT 1 FROM jobs INDEXED BY jobs_due
                       WHERE state IN ({runnable}) AND next_run_at <= :now
                         AND NOT EXISTS (SELECT 1 FROM config
                                          WHERE key = 'internal:paused' AND value = 'true')
                       LIMIT :limit)

-- name: claim
-- :limit is at most the number of due jobs, so the scan of jobs_runnable stops as soon as it
-- has them all instead of walking through the future-dated jobs behind them. Nothing is
-- claimed while the queue is paused, also when the pause came after count_due.
UPDATE jobs
   SET state = 'processing', attempts = attempts + 1, runs = runs + 1,
       lease_owner = :owner, lease_expires_at = :until, started_at = :now,
       finished_at = NULL, updated_at = :now, pid = NULL
 WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_runnable
               WHERE state IN ({runnable}) AND next_run_at <= :now
                 AND NOT EXISTS (SELECT 1 FROM config
                                  WHERE key = 'internal:paused' AND value = 'true')
               ORDER BY priority DESC, next_run_at, id
               LIMIT :limit)
RETURNING *

-- name: insert_attempt
INSERT INTO attempts (job_id, run, engine, started_at) VALUES (?, ?, ?, ?)

-- name: set_pid
UPDATE jobs SET pid = :pid
 WHERE id = :id AND state = 'processing' AND lease_owner = :owner AND runs = :run

-- name: renew_leases
UPDATE jobs SET lease_expires_at = :until
 WHERE state = 'processing' AND lease_owner = :owner
RETURNING id, runs

-- name: finish_job
-- Applies a transition decided by states.next_state(); :due_in NULL keeps next_run_at.
UPDATE jobs
   SET state = :state, attempts = :attempts,
       next_run_at = coalesce(:now + :due_in, next_run_at),
       exit_code = :exit_code, last_error = :error, error_kind = :error_kind,
       finished_at = :now, updated_at = :now,
       lease_owner = NULL, lease_expires_at = NULL, pid = NULL
 WHERE id = :id AND state = :from_state AND lease_owner = :owner AND runs = :run

-- name: finish_attempt
-- :output holds both streams in order (store/sqlite_output.py); stdout and stderr stay empty,
-- as they are derived from it (only attempts recorded before v3 have their bytes there).
UPDATE attempts
   SET finished_at = :now, exit_code = :exit_code, error = :error, error_kind = :error_kind,
       stdout = x'', stderr = x'', output = :output,
       stdout_truncated = :stdout_truncated, stderr_truncated = :stderr_truncated
 WHERE job_id = :id AND run = :run

-- name: orphans_all
SELECT * FROM jobs WHERE state = 'processing' AND lease_owner IS NOT :owner

-- name: orphans_expired
SELECT * FROM jobs
 WHERE state = 'processing' AND lease_expires_at < :now AND lease_owner IS NOT :owner

-- name: next_due
SELECT min(next_run_at) FROM jobs INDEXED BY jobs_due WHERE state IN ({runnable})

-- name: next_retry
SELECT min(next_run_at) FROM jobs WHERE state = 'failed'

-- name: cancel_waiting
UPDATE jobs SET state = 'canceled', updated_at = :now, finished_at = :now,
       last_error = :error, error_kind = 'canceled'
 WHERE id = :id AND state IN ({cancelable})
