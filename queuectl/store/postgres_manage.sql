-- The PostgreSQL store's statements for managing jobs: restart, edit, delete, cancel many,
-- purge, and dropping old output (store/postgres_manage.py). Every change is guarded by the
-- states it may leave, in the UPDATE's or DELETE's own WHERE, which PostgreSQL checks again on
-- a row that a concurrent claim changed meanwhile: a job an engine claimed is never touched.
--
-- The *_batch statements change at most a batch of rows found through an index, so that each
-- is a short transaction of its own however many rows match; they are repeated until they
-- change fewer rows than the batch.

-- name: states_of
SELECT id, state FROM queuectl_jobs WHERE id = ANY($1::text[])

-- name: lock_states_of
SELECT id, state FROM queuectl_jobs WHERE id = ANY($1::text[]) FOR UPDATE

-- name: jobs_of
SELECT {job} FROM queuectl_jobs WHERE id = ANY($1::text[])

-- name: restart_jobs
-- A job with parents that have not all completed is blocked again (its parents' ends
-- release or cancel it, as at enqueue).
UPDATE queuectl_jobs
   SET state = CASE WHEN EXISTS (SELECT 1 FROM queuectl_deps AS d JOIN queuectl_jobs AS p ON p.id = d.parent
                                WHERE d.child = queuectl_jobs.id AND p.state <> 'completed')
                   THEN 'blocked' ELSE 'pending' END,
       attempts = 0, next_run_at = {now}, updated_at = {now},
       last_error = NULL, exit_code = NULL, error_kind = NULL
 WHERE id = ANY($2::text[]) AND state IN ({restartable})
RETURNING id

-- name: restart_in_state_batch
UPDATE queuectl_jobs
   SET state = CASE WHEN EXISTS (SELECT 1 FROM queuectl_deps AS d JOIN queuectl_jobs AS p ON p.id = d.parent
                                WHERE d.child = queuectl_jobs.id AND p.state <> 'completed')
                   THEN 'blocked' ELSE 'pending' END,
       attempts = 0, next_run_at = {now}, updated_at = {now},
       last_error = NULL, exit_code = NULL, error_kind = NULL
 WHERE id IN (SELECT id FROM queuectl_jobs WHERE state = $2 LIMIT $3)
   AND state IN ({restartable})

-- name: cancel_jobs
UPDATE queuectl_jobs
   SET state = 'canceled', updated_at = {now}, finished_at = {now},
       last_error = $3, error_kind = 'canceled'
 WHERE id = ANY($2::text[]) AND state IN ({cancelable})

-- name: cancel_in_state_batch
UPDATE queuectl_jobs
   SET state = 'canceled', updated_at = {now}, finished_at = {now},
       last_error = $3, error_kind = 'canceled'
 WHERE id IN (SELECT id FROM queuectl_jobs WHERE state = $2 LIMIT $4)
   AND state IN ({cancelable})

-- name: edit_job
-- NULL keeps a field; $9 is a delay from now, the alternative to the run-at time $8.
UPDATE queuectl_jobs
   SET command = coalesce($3::text, command),
       priority = coalesce($4::bigint, priority),
       max_retries = coalesce($5::bigint, max_retries),
       timeout = CASE WHEN $7::boolean THEN NULL ELSE coalesce($6::float8, timeout) END,
       run_at = coalesce($8::float8, {now} + $9::float8, run_at),
       next_run_at = coalesce($8::float8, {now} + $9::float8, next_run_at),
       updated_at = {now}
 WHERE id = $2 AND state IN ({at_rest})
RETURNING {job}

-- name: delete_jobs
-- Their attempts go with them (ON DELETE CASCADE).
DELETE FROM queuectl_jobs WHERE id = ANY($1::text[]) AND state IN ({at_rest})
RETURNING id

-- name: count_finished
-- $2 is an age in seconds (NULL: any age); queuectl_jobs_finished serves it.
SELECT count(*) FROM queuectl_jobs
 WHERE state IN ({finished}) AND state = ANY($3::text[])
   AND finished_at < coalesce({now} - $2::float8, 'Infinity')
   AND ($4::text IS NULL OR queue = $4::text)

-- name: purge_finished_batch
DELETE FROM queuectl_jobs
 WHERE id IN (SELECT id FROM queuectl_jobs
               WHERE state IN ({finished}) AND state = ANY($3::text[])
                 AND finished_at < coalesce({now} - $2::float8, 'Infinity')
                 AND ($4::text IS NULL OR queue = $4::text)
               LIMIT $5)
   AND state IN ({finished})

-- name: count_waiting
-- A job that waits (pending, failed) is as old as its enqueue.
SELECT count(*) FROM queuectl_jobs
 WHERE state = $3 AND created_at < coalesce({now} - $2::float8, 'Infinity')
   AND ($4::text IS NULL OR queue = $4::text)

-- name: purge_waiting_batch
DELETE FROM queuectl_jobs
 WHERE id IN (SELECT id FROM queuectl_jobs
               WHERE state = $3 AND created_at < coalesce({now} - $2::float8, 'Infinity')
                 AND ($4::text IS NULL OR queue = $4::text)
               LIMIT $5)
   AND state IN ({at_rest})

-- name: drop_output_page
-- One page of attempts in key order after ($3, $4): drops the output of those that finished
-- more than $2 seconds ago and have some (an encoded output holds more than its version
-- byte), marking both streams truncated (which of them wrote is in the blob being dropped); an
-- empty output reads back as no chunks. Returns how many it dropped, how many it looked at,
-- and the page's last key. length() of a bytea reads no TOASTed value.
WITH page AS (
    SELECT job_id, run,
           finished_at < {now} - $2::float8
               AND (length(stdout) > 0 OR length(stderr) > 0 OR length(output) > 1) AS stale
      FROM queuectl_attempts
     WHERE (job_id, run) > ($3::text, $4::integer)
     ORDER BY job_id, run
     LIMIT $5
), dropped AS (
    UPDATE queuectl_attempts AS a
       SET stdout_truncated = true, stderr_truncated = true,
           stdout = '', stderr = '', output = ''
      FROM page
     WHERE page.stale AND a.job_id = page.job_id AND a.run = page.run
    RETURNING 1
)
SELECT (SELECT count(*) FROM dropped) AS dropped, (SELECT count(*) FROM page) AS seen,
       last.job_id, last.run
  FROM (SELECT 1) AS one
  LEFT JOIN LATERAL (SELECT job_id, run FROM page ORDER BY job_id DESC, run DESC LIMIT 1)
       AS last ON true
