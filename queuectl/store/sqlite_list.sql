-- Listings (store/sqlite_list.py), one keyset page per statement: (:at, :seq) is the sort key
-- of the previous page's last row, with rowid breaking ties between jobs of one instant in the
-- order they were enqueued. :states is a JSON array of states, or '' for every state; :grep is
-- a substring of the id, command or label, '' for any; :since and :until bound created_at;
-- :queue is the named queue wanted (NULL: every queue).
-- Each walks an index in its order (no sort, no OFFSET): a page costs what it returns.

-- name: list_created
-- Newest first; the first page starts at (:until, 0), which is how :until applies.
SELECT rowid AS seq, * FROM jobs INDEXED BY jobs_created
 WHERE (created_at, rowid) < (:at, :seq) AND created_at >= :since
   AND (:states = '' OR state IN (SELECT value FROM json_each(:states)))
   AND (:grep = '' OR instr(id, :grep) OR instr(command, :grep) OR instr(label, :grep))
 AND (:queue IS NULL OR queue = :queue)
 ORDER BY created_at DESC, rowid DESC
 LIMIT :page

-- name: list_created_in_state
SELECT rowid AS seq, * FROM jobs INDEXED BY jobs_state_created
 WHERE state = :state AND (created_at, rowid) < (:at, :seq) AND created_at >= :since
   AND (:grep = '' OR instr(id, :grep) OR instr(command, :grep) OR instr(label, :grep))
 AND (:queue IS NULL OR queue = :queue)
 ORDER BY created_at DESC, rowid DESC
 LIMIT :page

-- name: list_due
-- Waiting jobs soonest due first, through the claim's own partial index.
SELECT rowid AS seq, * FROM jobs INDEXED BY jobs_due
 WHERE state IN ({runnable}) AND state IN (SELECT value FROM json_each(:states))
   AND (next_run_at, rowid) > (:at, :seq)
   AND created_at >= :since AND created_at < :until
   AND (:grep = '' OR instr(id, :grep) OR instr(command, :grep) OR instr(label, :grep))
 AND (:queue IS NULL OR queue = :queue)
 ORDER BY next_run_at, rowid
 LIMIT :page

-- name: count_jobs
SELECT count(*) FROM jobs
 WHERE created_at >= :since AND created_at < :until
   AND (:states = '' OR state IN (SELECT value FROM json_each(:states)))
   AND (:grep = '' OR instr(id, :grep) OR instr(command, :grep) OR instr(label, :grep))
   AND (:queue IS NULL OR queue = :queue)

-- name: finished_since
-- The jobs whose last attempt ended at or after :since, newest first (statistics, the
-- dashboard's chart and metrics): the finished ones through the index of purge, the failed
-- ones awaiting their retry through jobs_retry, as a retry is due no sooner than the failure
-- it follows (one that `edit` moved before it is not counted).
SELECT * FROM (
    SELECT * FROM jobs INDEXED BY jobs_finished
     WHERE state IN ('completed', 'dead', 'canceled') AND finished_at >= :since
    UNION ALL
    SELECT * FROM jobs INDEXED BY jobs_retry
     WHERE state = 'failed' AND next_run_at >= :since AND finished_at >= :since
)
 ORDER BY finished_at DESC
 LIMIT :limit

-- name: ended_since
-- finished_since's jobs, only how and when each ended (the same indexes).
SELECT state, started_at, finished_at FROM (
    SELECT state, started_at, finished_at FROM jobs INDEXED BY jobs_finished
     WHERE state IN ('completed', 'dead', 'canceled') AND finished_at >= :since
    UNION ALL
    SELECT state, started_at, finished_at FROM jobs INDEXED BY jobs_retry
     WHERE state = 'failed' AND next_run_at >= :since AND finished_at >= :since
)
 ORDER BY finished_at DESC
 LIMIT :limit

-- name: parents_of
SELECT parent FROM deps WHERE child = ? ORDER BY parent

-- name: children_of
SELECT child FROM deps WHERE parent = ? ORDER BY child
