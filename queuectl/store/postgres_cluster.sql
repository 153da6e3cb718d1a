-- The engines of every host, as `status` shows them, and what other hosts ask of them.

-- name: engines
-- Every registered engine with its running jobs (as ids, commands and start times, in the
-- order they started) and how old its heartbeat is by the database's clock.
SELECT e.id, e.host, e.pid, e.version, e.concurrency, e.started_at, e.heartbeat_at,
       {now} - e.heartbeat_at AS heartbeat_age, e.stop_requested,
       coalesce(array_agg(j.id ORDER BY j.started_at, j.id)
                FILTER (WHERE j.id IS NOT NULL), '{{}}') AS job_ids,
       coalesce(array_agg(j.command ORDER BY j.started_at, j.id)
                FILTER (WHERE j.id IS NOT NULL), '{{}}') AS job_commands,
       coalesce(array_agg(j.started_at ORDER BY j.started_at, j.id)
                FILTER (WHERE j.id IS NOT NULL), '{{}}') AS job_started
  FROM queuectl_engines AS e
  LEFT JOIN queuectl_jobs AS j ON j.state = 'processing' AND j.lease_owner = e.id
 GROUP BY e.id
 ORDER BY e.started_at, e.id

-- name: request_stop
-- $1: the engines to stop (NULL: every one); $2: 'finish' or 'kill'. A 'kill' is never turned
-- back into a 'finish'.
UPDATE queuectl_engines
   SET stop_requested = CASE WHEN stop_requested = 'kill' THEN 'kill' ELSE $2 END
 WHERE $1::text[] IS NULL OR id = ANY($1::text[])
RETURNING id

-- name: request_cancel
-- Running jobs to be killed by their engines, wherever they run.
UPDATE queuectl_jobs SET cancel_requested = true
 WHERE id = ANY($1::text[]) AND state = 'processing'
RETURNING id

-- name: engine_requests
-- What was asked of engine $1: its stop, and which of its running jobs to cancel.
SELECT (SELECT stop_requested FROM queuectl_engines WHERE id = $1) AS stop,
       coalesce((SELECT array_agg(id) FROM queuectl_jobs
                  WHERE state = 'processing' AND lease_owner = $1 AND cancel_requested),
                '{{}}') AS cancel

-- name: forget_lost_engines
-- Engines of any host whose heartbeat is older than $2 seconds and that hold no job any more
-- (their jobs were rescued): they died without detaching.
DELETE FROM queuectl_engines AS e
 WHERE e.heartbeat_at < {now} - $2
   AND NOT EXISTS (SELECT 1 FROM queuectl_jobs AS j
                    WHERE j.state = 'processing' AND j.lease_owner = e.id)
