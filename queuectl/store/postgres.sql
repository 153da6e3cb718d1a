-- Every statement of the PostgreSQL store, as named blocks loaded by store/postgres_db.py;
-- the schema is in migrations/. Times are POSIX seconds (double precision).
-- {now} is the store's "now": $1, the injected clock (tests), or when that is NULL the server's
-- transaction time, so that engines on hosts with skewed clocks agree on leases and due times.
-- A statement with {now} gets the clock as $1 (added by the store); the others number their
-- parameters from $1. {runnable}, {cancelable} and {retryable} are the state sets of
-- queuectl/states.py; {job} and {attempt} the columns that become a Job and an Attempt.
-- State changes are guarded by the state they leave and the lease (owner, run) that holds the
-- job, so a change that no longer applies updates no row.

-- name: open
-- The schema version and the change counter, in the one round trip every store makes.
SELECT (SELECT max(version) FROM queuectl_schema) AS version,
       (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM queuectl_changes) AS changes

-- name: changes
SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM queuectl_changes

-- name: enqueue_context
SELECT {now} AS now, key, value FROM (SELECT NULL) AS one
  LEFT JOIN queuectl_config ON true

-- name: insert_jobs
-- $1 the enqueue's "now" (from enqueue_context); one array per column, a row per job. A job
-- whose unique key a live job holds is not inserted: the ids returned are those that were.
INSERT INTO queuectl_jobs (id, command, label, state, priority, max_retries, timeout, cwd, env,
                           created_at, updated_at, run_at, next_run_at, queue, unique_key)
SELECT s.id, s.command, s.label, s.state, s.priority, s.max_retries, s.timeout, s.cwd,
       s.env::jsonb, $1, $1, coalesce(s.run_at, $1), coalesce(s.run_at, $1), s.queue,
       s.unique_key
  FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
              $7::float8[], $8::text[], $9::text[], $10::float8[], $11::text[], $12::text[],
              $13::text[])
       AS s(id, command, label, priority, max_retries, timeout, cwd, env, run_at, state, queue,
            unique_key)
    ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ({live}) DO NOTHING
RETURNING id

-- name: live_with_keys
SELECT id, unique_key FROM queuectl_jobs WHERE unique_key = ANY($1::text[]) AND state IN ({live})

-- name: insert_deps
INSERT INTO queuectl_deps (child, parent) SELECT * FROM unnest($1::text[], $2::text[])

-- name: cancel_doomed
-- New jobs with a parent that is already dead or canceled are canceled at once, naming it
-- (the trigger cancels their blocked children in turn).
UPDATE queuectl_jobs AS j
   SET state = 'canceled', finished_at = $2, updated_at = $2, error_kind = 'canceled',
       last_error = 'canceled: its parent ' || (
           SELECT p.id || ' is ' || p.state FROM queuectl_deps AS d
             JOIN queuectl_jobs AS p ON p.id = d.parent
            WHERE d.child = j.id AND p.state IN ('dead', 'canceled') LIMIT 1)
 WHERE j.id = ANY($1::text[]) AND j.state = 'blocked'
   AND EXISTS (SELECT 1 FROM queuectl_deps AS d JOIN queuectl_jobs AS p ON p.id = d.parent
                WHERE d.child = j.id AND p.state IN ('dead', 'canceled'))

-- name: release_ready
-- New jobs whose parents have all completed already need not wait.
UPDATE queuectl_jobs AS j SET state = 'pending'
 WHERE j.id = ANY($1::text[]) AND j.state = 'blocked'
   AND NOT EXISTS (SELECT 1 FROM queuectl_deps AS d JOIN queuectl_jobs AS p ON p.id = d.parent
                    WHERE d.child = j.id AND p.state <> 'completed')

-- name: notify
-- Wakes the engines listening on the database when the transaction commits. $1 carries a
-- random token (identical payloads in one transaction would be merged into one notice); the
-- counter is bumped for the engines that poll.
SELECT nextval('queuectl_changes'),
       pg_notify('queuectl', json_build_object('queue', 'default', 'r', $1::text)::text)

-- name: existing_ids
SELECT id FROM queuectl_jobs WHERE id = ANY($1::text[])

-- name: get_job
SELECT {job} FROM queuectl_jobs WHERE id = $1

-- name: list_jobs
SELECT {job} FROM queuectl_jobs
 ORDER BY created_at DESC, seq DESC LIMIT $1::bigint

-- name: list_jobs_in_state
SELECT {job} FROM queuectl_jobs WHERE state = $1
 ORDER BY created_at DESC, seq DESC LIMIT $2::bigint

-- name: list_attempts
-- One row with a NULL run for a job that never ran; none for a job that does not exist.
SELECT j.id AS found, {attempt}
  FROM queuectl_jobs AS j LEFT JOIN queuectl_attempts AS a ON a.job_id = j.id
 WHERE j.id = $1
 ORDER BY a.run

-- name: retry_dead
UPDATE queuectl_jobs
   SET state = 'pending', attempts = 0, next_run_at = {now}, updated_at = {now},
       last_error = NULL, exit_code = NULL, error_kind = NULL
 WHERE id = ANY($2::text[]) AND state IN ({retryable})
RETURNING id

-- name: retry_all_dead
UPDATE queuectl_jobs
   SET state = 'pending', attempts = 0, next_run_at = {now}, updated_at = {now},
       last_error = NULL, exit_code = NULL, error_kind = NULL
 WHERE state IN ({retryable})
RETURNING id

-- name: cancel_waiting
-- The job as it now is: canceled if it was waiting, else untouched (the caller decides).
WITH canceled AS (
    UPDATE queuectl_jobs
       SET state = 'canceled', updated_at = {now}, finished_at = {now},
           last_error = $3, error_kind = 'canceled'
     WHERE id = $2 AND state IN ({cancelable})
    RETURNING *
)
SELECT {job} FROM canceled
UNION ALL
SELECT {job} FROM queuectl_jobs WHERE id = $2 AND NOT EXISTS (SELECT 1 FROM canceled)

-- name: get_config
SELECT key, value FROM queuectl_config

-- name: set_config
INSERT INTO queuectl_config (key, value) VALUES ($1, $2)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value

-- name: is_paused
-- The queue's pause lives in the config table under a key that is no config key (so that
-- `config list` never shows it and `config set` refuses it): 'true' while paused.
SELECT 1 FROM queuectl_config WHERE key = 'internal:paused' AND value = 'true'

-- name: set_paused
INSERT INTO queuectl_config (key, value) VALUES ('internal:paused', $1)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value

-- name: part_claimed
-- Not a statement: the end of both claim statements (claim here, claim_by_queue in
-- postgres_queues.sql), written into them where they say {part_claimed}. The jobs of their
-- CTE `due` ($2 the engine, $4 the lease) become `claimed`, each with its attempt opened.
claimed AS (
    UPDATE queuectl_jobs AS j
       SET state = 'processing', attempts = j.attempts + 1, runs = j.runs + 1,
           lease_owner = $2, lease_expires_at = {now} + $4, started_at = {now},
           finished_at = NULL, updated_at = {now}, pid = NULL
     WHERE j.id = ANY (ARRAY(SELECT id FROM due))
    RETURNING j.*
), opened AS (
    INSERT INTO queuectl_attempts (job_id, run, engine, started_at)
    SELECT id, runs, $2, {now} FROM claimed
)

-- name: claim
-- One statement: lock up to $3 due runnable jobs in claim order, skipping the rows other
-- engines are claiming (SKIP LOCKED), take them under $2's lease of $4 seconds, and open their
-- attempts. MATERIALIZED keeps the planner from folding the locking scan into the UPDATE
-- (which could lock and update more rows than the limit). The limit is bounded by how many
-- jobs are due, counted in the order of queuectl_jobs_due (so that it walks that index and
-- stops at $3), so that the scan of queuectl_jobs_runnable stops once it has them all instead
-- of walking on through the jobs scheduled for later; while the queue is paused, the bound is
-- 0. The UPDATE finds the locked rows by primary key from an array: joined to the CTE, whose
-- size the planner cannot know (a LIMIT from a subquery), it may hash the whole table.
-- While any named queue is limited or paused (a row of queuectl_queues holds something), the
-- bound is 0 too and the one row returned has `held` true and no job: the store then claims
-- queue by queue (postgres_queues.sql claim_by_queue). Otherwise `held` is false on every row
-- (and on the one row with a NULL id when nothing was claimed).
WITH held AS MATERIALIZED (
    SELECT EXISTS (SELECT 1 FROM queuectl_queues WHERE concurrency IS NOT NULL OR paused)
           AS held
), due AS MATERIALIZED (
    SELECT id FROM queuectl_jobs
     WHERE state IN ({runnable}) AND next_run_at <= {now}
     ORDER BY priority DESC, next_run_at, id
     LIMIT (SELECT count(*) FROM (SELECT 1 FROM queuectl_jobs
                                   WHERE state IN ({runnable}) AND next_run_at <= {now}
                                     AND NOT EXISTS (SELECT 1 FROM queuectl_config
                                                      WHERE key = 'internal:paused'
                                                        AND value = 'true')
                                     AND NOT (SELECT held FROM held)
                                   ORDER BY next_run_at
                                   LIMIT $3) AS bound)
       FOR UPDATE SKIP LOCKED
), {part_claimed}
SELECT {job}, held FROM held LEFT JOIN claimed ON true ORDER BY priority DESC, next_run_at, id

-- name: set_pids
UPDATE queuectl_jobs AS j SET pid = p.pid
  FROM unnest($1::text[], $2::text[], $3::integer[], $4::integer[]) AS p(id, owner, run, pid)
 WHERE j.id = p.id AND j.state = 'processing' AND j.lease_owner = p.owner AND j.runs = p.run
  

-- name: finish_many
-- Applies transitions decided by states.next_state(), one array element per finish, and ends
-- the attempts of those that applied; returns the places (1-based) of the finishes that did.
-- asyncpg's executemany reports no row counts, hence one UPDATE ... FROM unnest(...) RETURNING.
-- A NULL due_in keeps next_run_at. The output is both streams in order (sqlite_output.py's
-- encoding); stdout and stderr are derived from it, so the columns stay empty.
WITH f AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::integer[], $5::text[], $6::text[],
                         $7::integer[], $8::float8[], $9::integer[], $10::text[], $11::text[],
                         $12::boolean[], $13::boolean[], $14::bytea[])
           WITH ORDINALITY
           AS f(id, owner, run, from_state, state, attempts, due_in, exit_code, error,
                error_kind, stdout_truncated, stderr_truncated, output, ord)
), done AS (
    UPDATE queuectl_jobs AS j
       SET state = f.state, attempts = f.attempts,
           next_run_at = coalesce({now} + f.due_in, j.next_run_at),
           exit_code = f.exit_code, last_error = f.error, error_kind = f.error_kind,
           finished_at = {now}, updated_at = {now},
           lease_owner = NULL, lease_expires_at = NULL, pid = NULL
      FROM f
     WHERE j.id = f.id AND j.state = f.from_state AND j.lease_owner = f.owner
       AND j.runs = f.run
    RETURNING f.ord
), ended AS (
    UPDATE queuectl_attempts AS a
       SET finished_at = {now}, exit_code = f.exit_code, error = f.error,
           error_kind = f.error_kind, stdout = '', stderr = '', output = f.output,
           stdout_truncated = f.stdout_truncated, stderr_truncated = f.stderr_truncated
      FROM done JOIN f ON f.ord = done.ord
     WHERE a.job_id = f.id AND a.run = f.run
)
SELECT ord FROM done

-- name: renew_leases
-- The engine's heartbeat goes with its renewal: one statement, one round trip. The last row
-- (id NULL) tells whether the engine is still registered: an engine cut off for long was
-- taken for lost and forgotten (postgres_cluster.sql), and registers again.
WITH beat AS (
    UPDATE queuectl_engines SET heartbeat_at = {now} WHERE id = $2 RETURNING id
), renewed AS (
    UPDATE queuectl_jobs SET lease_expires_at = {now} + $3
     WHERE state = 'processing' AND lease_owner = $2
    RETURNING id, runs
)
SELECT id, runs, NULL AS registered FROM renewed
UNION ALL
SELECT NULL, NULL, EXISTS (SELECT 1 FROM beat)

-- name: attach_engine
INSERT INTO queuectl_engines (id, machine, host, pid, pid_started, version, concurrency,
                              started_at, heartbeat_at)
VALUES ($2, $3, $4, $5, $6, $7, $8, {now}, {now})
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at

-- name: detach_engine
DELETE FROM queuectl_engines WHERE id = $1

-- name: machine_engines
-- The other engines registered from this machine: whether each still runs, only it can tell.
SELECT id, pid, pid_started FROM queuectl_engines
 WHERE machine = $1 AND id <> $2

-- name: forget_engines
-- Dead engines of this machine that hold no job any more.
DELETE FROM queuectl_engines AS e
 WHERE e.id = ANY($1::text[])
   AND NOT EXISTS (SELECT 1 FROM queuectl_jobs AS j
                    WHERE j.state = 'processing' AND j.lease_owner = e.id)

-- name: orphans
-- Running jobs of other owners whose lease ran out, or whose engine ($3) is known dead.
SELECT {job} FROM queuectl_jobs
 WHERE state = 'processing' AND lease_owner IS DISTINCT FROM $2
   AND (lease_expires_at < {now} OR lease_owner = ANY($3::text[]))
 ORDER BY lease_expires_at, id

-- name: next_due
SELECT min(next_run_at) - {now} FROM queuectl_jobs WHERE state IN ({runnable})

-- name: next_retry
SELECT min(next_run_at) - {now} FROM queuectl_jobs WHERE state = 'failed'
