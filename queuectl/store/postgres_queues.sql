-- Named queues (store/postgres_queues.py): their limits and pauses, and the claim that honours
-- them across every engine of the database. A queue has a row in queuectl_queues only once it
-- was given a limit or paused; every other queue is known by its jobs alone.

-- name: queue_list
-- Every queue with a row or with jobs, with its jobs per state: the sums of the counters that
-- the triggers of migration 0004 keep (a few rows, however many jobs).
SELECT coalesce(q.name, c.queue) AS name, q.concurrency, coalesce(q.paused, false) AS paused,
       c.state, coalesce(c.n, 0) AS n
  FROM queuectl_queues AS q
  FULL JOIN (SELECT queue, state, sum(n) AS n FROM queuectl_counts
              GROUP BY queue, state HAVING sum(n) <> 0) AS c
    ON c.queue = q.name
 ORDER BY 1

-- name: count_states
-- Jobs per state, from the same counters.
SELECT state, sum(n) AS n FROM queuectl_counts GROUP BY state

-- name: set_queue
INSERT INTO queuectl_queues (name, concurrency) VALUES ($1, $2)
    ON CONFLICT (name) DO UPDATE SET concurrency = excluded.concurrency

-- name: set_queue_paused
INSERT INTO queuectl_queues (name, paused) VALUES ($1, $2)
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused

-- name: forget_plain_queue
-- A row that holds neither a limit nor a pause is dropped, so that the claim's fast path
-- (postgres.sql `claim`, which steps aside while any row holds something) comes back.
DELETE FROM queuectl_queues WHERE name = $1 AND concurrency IS NULL AND NOT paused

-- name: lock_limited_queues
-- The claim's first statement: lock the rows of the limited queues it may take from ($1, NULL:
-- all), in name order (so that two engines never wait on each other in a cycle). Until this
-- transaction ends, no other engine claims from these queues; the claim that follows, a
-- statement of its own, reads the running jobs with a snapshot taken after the lock was
-- granted, so it counts every claim that an engine committed while this one waited.
SELECT name, concurrency FROM queuectl_queues
 WHERE concurrency IS NOT NULL AND NOT paused AND ($1::text[] IS NULL OR name = ANY($1::text[]))
 ORDER BY name
   FOR UPDATE

-- name: claim_by_queue
-- $2 owner, $3 limit, $4 lease, $5 the engine's queues (NULL: all), $6/$7 the limited queues
-- locked by lock_limited_queues and their limits. Each queue with a waiting job (a loose scan
-- of queue_due, in its order so that it is the index walked: one probe per queue; the order of
-- queue_state would walk each queue's finished jobs first) that may be claimed from gives at
-- most its room: $3, and
-- for a limited queue its limit less its running jobs (counted now, after the lock). A limited
-- queue that was not locked (its limit set since) and a paused one give nothing. Each queue's
-- candidates come from its own index, bounded by how many of its jobs are due (as the claim of
-- postgres.sql bounds its walk); the best $3 of them are locked, skipping any that another
-- transaction holds, and claimed.
WITH RECURSIVE q AS (
    (SELECT queue AS name FROM queuectl_jobs WHERE state IN ({runnable})
      ORDER BY queue, next_run_at LIMIT 1)
    UNION ALL
    SELECT n.name FROM q, LATERAL (SELECT queue AS name FROM queuectl_jobs
                                    WHERE state IN ({runnable}) AND queue > q.name
                                    ORDER BY queue, next_run_at LIMIT 1) AS n
), open AS (
    SELECT q.name,
           CASE WHEN l.name IS NULL THEN $3::bigint
                ELSE least($3::bigint, greatest(l.concurrency - (
                    SELECT count(*) FROM queuectl_jobs AS p
                     WHERE p.queue = q.name AND p.state = 'processing'), 0))
           END AS room
      FROM q LEFT JOIN unnest($6::text[], $7::integer[]) AS l(name, concurrency)
        ON l.name = q.name
     WHERE ($5::text[] IS NULL OR q.name = ANY($5::text[]))
       AND NOT EXISTS (SELECT 1 FROM queuectl_queues AS h
                        WHERE h.name = q.name
                          AND (h.paused OR (h.concurrency IS NOT NULL AND l.name IS NULL)))
       AND NOT EXISTS (SELECT 1 FROM queuectl_config
                        WHERE key = 'internal:paused' AND value = 'true')
), candidates AS (
    SELECT c.id, c.priority, c.next_run_at
      FROM open AS o, LATERAL (
        SELECT j.id, j.priority, j.next_run_at FROM queuectl_jobs AS j
         WHERE j.queue = o.name AND j.state IN ({runnable}) AND j.next_run_at <= {now}
         ORDER BY j.priority DESC, j.next_run_at, j.id
         LIMIT (SELECT count(*) FROM (SELECT 1 FROM queuectl_jobs AS d
                                       WHERE d.queue = o.name AND d.state IN ({runnable})
                                         AND d.next_run_at <= {now}
                                       ORDER BY d.next_run_at
                                       LIMIT o.room) AS bound)) AS c
     WHERE o.room > 0
), due AS MATERIALIZED (
    SELECT id FROM queuectl_jobs
     WHERE id = ANY (ARRAY(SELECT id FROM candidates
                            ORDER BY priority DESC, next_run_at, id LIMIT $3))
       AND state IN ({runnable}) AND next_run_at <= {now}
       FOR UPDATE SKIP LOCKED
), {part_claimed}
SELECT {job} FROM claimed ORDER BY priority DESC, next_run_at, id

-- name: due_by_queue
-- Seconds until the earliest waiting job that a claim for queues $2 (NULL: all) could take is
-- due: its queue not paused, and not full (a limited queue with as many jobs running as its
-- limit). NULL when there is none. The queue-wide pause is the caller's to check. While no
-- queue is limited or paused and every queue is asked for, one probe of the runnable index.
WITH RECURSIVE q AS (
    (SELECT queue AS name, next_run_at AS due FROM queuectl_jobs WHERE state IN ({runnable})
      ORDER BY queue, next_run_at LIMIT 1)
    UNION ALL
    SELECT n.name, n.due FROM q, LATERAL (SELECT queue AS name, next_run_at AS due
                                           FROM queuectl_jobs
                                          WHERE state IN ({runnable}) AND queue > q.name
                                          ORDER BY queue, next_run_at LIMIT 1) AS n
)
SELECT CASE WHEN $2::text[] IS NULL
                 AND NOT EXISTS (SELECT 1 FROM queuectl_queues
                                  WHERE concurrency IS NOT NULL OR paused)
            THEN (SELECT min(next_run_at) FROM queuectl_jobs WHERE state IN ({runnable}))
            ELSE (SELECT min(q.due) FROM q
                   WHERE ($2::text[] IS NULL OR q.name = ANY($2::text[]))
                     AND NOT EXISTS (SELECT 1 FROM queuectl_queues AS h
                                      WHERE h.name = q.name
                                        AND (h.paused
                                             OR h.concurrency <= (
                                                 SELECT count(*) FROM queuectl_jobs AS p
                                                  WHERE p.queue = q.name
                                                    AND p.state = 'processing'))))
       END - {now}
