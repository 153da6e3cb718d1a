-- Named queues (store/sqlite_queues.py): their limits and pauses, and the claim that honours
-- them. A queue has a row in `queues` only once it was given a limit or paused; every other
-- queue is known by its jobs alone. {runnable} is states.RUNNABLE.

-- name: queue_rows
SELECT name, concurrency, paused FROM queues

-- name: queue_counts
-- Jobs per queue and state, from the counters the triggers keep (sqlite.sql schema_v5); a
-- queue whose jobs are all gone has rows of 0, and is not listed for them.
SELECT queue, state, n FROM job_counts WHERE n <> 0

-- name: set_queue
INSERT INTO queues (name, concurrency) VALUES (:name, :concurrency)
    ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency

-- name: set_queue_paused
INSERT INTO queues (name, paused) VALUES (:name, :paused)
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused

-- name: forget_plain_queue
-- A row that holds neither a limit nor a pause says nothing: `queue list` still shows the
-- queue while it has jobs, and the claim's fast path needs no row to be there.
DELETE FROM queues WHERE name = :name AND concurrency IS NULL AND paused = 0

-- name: queue_holds
-- What makes a claim look at each queue: the limited and the paused ones, and the queue-wide
-- pause (`queuectl pause`), as a row with a NULL name.
SELECT name, concurrency, paused FROM queues WHERE concurrency IS NOT NULL OR paused
UNION ALL
SELECT NULL, NULL, 1 FROM config WHERE key = 'internal:paused' AND value = 'true'

-- name: queues_due
-- Each queue with a waiting job, and when its earliest is due: a loose scan of jobs_queue_due
-- (one probe per queue, however many jobs each holds).
WITH RECURSIVE q(name, due) AS (
    SELECT queue, next_run_at
      FROM (SELECT queue, next_run_at FROM jobs INDEXED BY jobs_queue_due
             WHERE state IN ({runnable}) ORDER BY queue, next_run_at LIMIT 1)
    UNION ALL
    SELECT j.queue, j.next_run_at
      FROM q JOIN jobs AS j
        ON j.rowid = (SELECT rowid FROM jobs INDEXED BY jobs_queue_due
                       WHERE state IN ({runnable}) AND queue > q.name
                       ORDER BY queue, next_run_at LIMIT 1)
)
SELECT name, due FROM q

-- name: queues_processing
SELECT queue, count(*) FROM jobs INDEXED BY jobs_queue_processing
 WHERE state = 'processing' GROUP BY queue

-- name: queue_candidates
-- The queue's best :limit due jobs. :limit is never more than its due jobs (bounded by their
-- count, up to :limit), so that the scan stops once it has them all instead of walking on
-- through the jobs due later.
SELECT id, priority, next_run_at FROM jobs INDEXED BY jobs_queue_runnable
 WHERE queue = :queue AND state IN ({runnable}) AND next_run_at <= :now
 ORDER BY priority DESC, next_run_at, id
 LIMIT (SELECT count(*) FROM (SELECT 1 FROM jobs INDEXED BY jobs_queue_due
                               WHERE queue = :queue AND state IN ({runnable})
                                 AND next_run_at <= :now
                               LIMIT :limit))

-- name: claim_ids
-- By primary key: `+state` keeps the planner from walking jobs_state_created instead.
UPDATE jobs
   SET state = 'processing', attempts = attempts + 1, runs = runs + 1,
       lease_owner = :owner, lease_expires_at = :until, started_at = :now,
       finished_at = NULL, updated_at = :now, pid = NULL
 WHERE id IN (SELECT value FROM json_each(:ids)) AND +state IN ({runnable})
RETURNING *
