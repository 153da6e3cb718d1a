-- Listings (store/postgres_list.py), one keyset page per statement: ($2, $3) is the sort key of
-- the previous page's last row, with seq (the order of enqueue) breaking ties between jobs of
-- one instant; $4 is a substring of the id, command or label ('' for any), $5 the earliest
-- created_at wanted. Each walks an index in its order (no sort, no OFFSET), so a page costs
-- what it returns however deep into a million jobs it is. The last parameter, after the page
-- size, is the named queue wanted (NULL: every queue).

-- name: list_created
-- Newest first; $1 the states wanted (NULL: every state). The first page starts at
-- (until, 0), which is how `until` applies.
SELECT seq, {job} FROM queuectl_jobs
 WHERE (created_at, seq) < ($2::float8, $3::bigint) AND created_at >= $5::float8
   AND ($1::text[] IS NULL OR state = ANY($1::text[]))
   AND ($4::text = '' OR strpos(id, $4) > 0 OR strpos(command, $4) > 0
        OR strpos(label, $4) > 0)
 AND ($7::text IS NULL OR queue = $7::text)
 ORDER BY created_at DESC, seq DESC
 LIMIT $6

-- name: list_created_in_state
SELECT seq, {job} FROM queuectl_jobs
 WHERE state = $1::text
   AND (created_at, seq) < ($2::float8, $3::bigint) AND created_at >= $5::float8
   AND ($4::text = '' OR strpos(id, $4) > 0 OR strpos(command, $4) > 0
        OR strpos(label, $4) > 0)
 AND ($7::text IS NULL OR queue = $7::text)
 ORDER BY created_at DESC, seq DESC
 LIMIT $6

-- name: list_due
-- Waiting jobs ($1 of states.RUNNABLE) soonest due first, through the claim's partial index:
-- the literal state list lets the planner use it. $6 is `until`.
SELECT seq, {job} FROM queuectl_jobs
 WHERE state IN ({runnable}) AND state = ANY($1::text[])
   AND (next_run_at, seq) > ($2::float8, $3::bigint)
   AND created_at >= $5::float8 AND created_at < $6::float8
   AND ($4::text = '' OR strpos(id, $4) > 0 OR strpos(command, $4) > 0
        OR strpos(label, $4) > 0)
 AND ($8::text IS NULL OR queue = $8::text)
 ORDER BY next_run_at, seq
 LIMIT $7

-- name: count_jobs
SELECT count(*) FROM queuectl_jobs
 WHERE created_at >= $2::float8 AND created_at < $3::float8
   AND ($1::text[] IS NULL OR state = ANY($1::text[]))
   AND ($4::text = '' OR strpos(id, $4) > 0 OR strpos(command, $4) > 0
        OR strpos(label, $4) > 0)
   AND ($5::text IS NULL OR queue = $5::text)

-- name: finished_since
-- The jobs whose last attempt ended at or after $1, newest first (statistics, the dashboard's
-- chart and metrics): the finished ones through the index of purge, the failed ones awaiting
-- their retry through the retries' index, as a retry is due no sooner than the failure it
-- follows (one that `edit` moved before it is not counted).
SELECT {job} FROM (
    SELECT * FROM queuectl_jobs
     WHERE state IN ('completed', 'dead', 'canceled') AND finished_at >= $1::float8
    UNION ALL
    SELECT * FROM queuectl_jobs
     WHERE state = 'failed' AND next_run_at >= $1::float8 AND finished_at >= $1::float8
) AS queuectl_jobs
 ORDER BY finished_at DESC
 LIMIT $2::bigint

-- name: ended_since
-- finished_since's jobs, only how and when each ended (the same indexes).
SELECT state, started_at, finished_at FROM (
    SELECT state, started_at, finished_at FROM queuectl_jobs
     WHERE state IN ('completed', 'dead', 'canceled') AND finished_at >= $1::float8
    UNION ALL
    SELECT state, started_at, finished_at FROM queuectl_jobs
     WHERE state = 'failed' AND next_run_at >= $1::float8 AND finished_at >= $1::float8
) AS ended
 ORDER BY finished_at DESC
 LIMIT $2::bigint

-- name: parents_of
SELECT parent FROM queuectl_deps WHERE child = $1 ORDER BY parent

-- name: children_of
SELECT child FROM queuectl_deps WHERE parent = $1 ORDER BY child
