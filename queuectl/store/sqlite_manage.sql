-- The SQLite store's statements for managing jobs: restart, edit, delete, cancel many, purge,
-- and dropping old output (store/sqlite_manage.py). Loaded with every other sqlite*.sql file by
-- store/sqlite_db.py; {restartable}, {at_rest}, {finished}, {cancelable} and {runnable} are the
-- state sets of queuectl/states.py. Every change is guarded by the states it may leave, so a job
-- an engine claimed meanwhile is never touched.
--
-- The *_batch statements change at most :batch rows, found through an index, so that each runs
-- as a short transaction of its own however many rows match; they are repeated until they
-- change fewer than :batch rows.

-- name: restart_job
-- A job with parents that have not all completed is blocked again (its parents' ends
-- release or cancel it, as at enqueue).
UPDATE jobs
   SET state = CASE WHEN EXISTS (SELECT 1 FROM deps AS d JOIN jobs AS p ON p.id = d.parent
                                WHERE d.child = jobs.id AND p.state <> 'completed')
                   THEN 'blocked' ELSE 'pending' END,
       attempts = 0, next_run_at = :now, updated_at = :now,
       last_error = NULL, exit_code = NULL, error_kind = NULL
 WHERE id = :id AND state IN ({restartable})

-- name: restart_in_state_batch
UPDATE jobs
   SET state = CASE WHEN EXISTS (SELECT 1 FROM deps AS d JOIN jobs AS p ON p.id = d.parent
                                WHERE d.child = jobs.id AND p.state <> 'completed')
                   THEN 'blocked' ELSE 'pending' END,
       attempts = 0, next_run_at = :now, updated_at = :now,
       last_error = NULL, exit_code = NULL, error_kind = NULL
 WHERE rowid IN (SELECT rowid FROM jobs INDEXED BY jobs_state_created
                  WHERE state = :state LIMIT :batch)
   AND state IN ({restartable})

-- name: cancel_in_state_batch
UPDATE jobs SET state = 'canceled', updated_at = :now, finished_at = :now,
       last_error = :error, error_kind = 'canceled'
 WHERE rowid IN (SELECT rowid FROM jobs INDEXED BY jobs_state_created
                  WHERE state = :state LIMIT :batch)
   AND state IN ({cancelable})

-- name: edit_job
-- NULL keeps a field; :delay is a duration from :now, the alternative to :run_at.
UPDATE jobs
   SET command = coalesce(:command, command),
       priority = coalesce(:priority, priority),
       max_retries = coalesce(:max_retries, max_retries),
       timeout = CASE WHEN :clear_timeout THEN NULL ELSE coalesce(:timeout, timeout) END,
       run_at = coalesce(:run_at, :now + :delay, run_at),
       next_run_at = coalesce(:run_at, :now + :delay, next_run_at),
       updated_at = :now
 WHERE id = :id AND state IN ({at_rest})
RETURNING *

-- name: delete_job
-- The job's attempts go with it (ON DELETE CASCADE).
DELETE FROM jobs WHERE id = :id AND state IN ({at_rest})

-- name: count_finished
-- :states is a JSON array of the finished states wanted; jobs_finished serves the age.
SELECT count(*) FROM jobs INDEXED BY jobs_finished
 WHERE state IN ({finished}) AND finished_at < :cutoff
   AND state IN (SELECT value FROM json_each(:states))
   AND (:queue IS NULL OR queue = :queue)

-- name: purge_finished_batch
DELETE FROM jobs
 WHERE rowid IN (SELECT rowid FROM jobs INDEXED BY jobs_finished
                  WHERE state IN ({finished}) AND finished_at < :cutoff
                    AND state IN (SELECT value FROM json_each(:states))
                    AND (:queue IS NULL OR queue = :queue)
                  LIMIT :batch)

-- name: count_waiting
SELECT count(*) FROM jobs INDEXED BY jobs_state_created
 WHERE state = :state AND created_at < :cutoff AND state IN ({at_rest})
   AND (:queue IS NULL OR queue = :queue)

-- name: purge_waiting_batch
-- A job that waits (pending, failed) is as old as its enqueue.
DELETE FROM jobs
 WHERE rowid IN (SELECT rowid FROM jobs INDEXED BY jobs_state_created
                  WHERE state = :state AND created_at < :cutoff
                    AND (:queue IS NULL OR queue = :queue)
                  LIMIT :batch)
   AND state IN ({at_rest})

-- name: output_page
-- One page of attempts in key order after (:job_id, :run), each with whether it has output to
-- drop: bytes in the columns of an attempt stored before v3, or an encoded output holding more
-- than its version byte (store/sqlite_output.py). length() of a blob reads no overflow page,
-- so a page costs little to read.
SELECT job_id, run,
       finished_at < :cutoff
           AND (length(stdout) > 0 OR length(stderr) > 0 OR length(output) > 1) AS stale
  FROM attempts
 WHERE (job_id, run) > (:job_id, :run)
 ORDER BY job_id, run
 LIMIT :page

-- name: drop_output
-- Both streams are marked truncated (which of them wrote is in the blob being dropped); an
-- empty output reads back as no chunks: output dropped by retention.
UPDATE attempts
   SET stdout_truncated = 1, stderr_truncated = 1, stdout = x'', stderr = x'', output = x''
 WHERE job_id = :job_id AND run = :run AND finished_at < :cutoff
