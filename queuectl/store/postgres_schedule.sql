-- Cron schedules (store/postgres_schedule.py). The tables are in migrations/0003_scheduling.sql.
-- Several engines fire the same schedules: a tick is taken by the one transaction whose guarded
-- update moves the schedule's last_fire_at forward to it and whose (schedule, fire_at) row
-- inserts; every other engine's attempt at it changes nothing (see postgres_schedule.py).

-- name: add_schedule
-- $1 the clock; the schedule's fields.
INSERT INTO queuectl_schedules (name, cron, tz, no_overlap, spec, paused, created_at)
VALUES ($2, $3, $4, $5, $6, $7, {now})
ON CONFLICT (name) DO NOTHING
RETURNING name

-- name: remove_schedule
-- The schedule and its ticks; the jobs it enqueued stay.
WITH gone AS (DELETE FROM queuectl_schedules WHERE name = $1 RETURNING name),
     ticks AS (DELETE FROM queuectl_schedule_ticks WHERE schedule IN (SELECT name FROM gone))
SELECT name FROM gone

-- name: lock_schedule
SELECT s.*, j.state AS last_job_state
  FROM queuectl_schedules AS s LEFT JOIN queuectl_jobs AS j ON j.id = s.last_job_id
 WHERE s.name = $1
   FOR UPDATE OF s

-- name: set_schedule_paused
UPDATE queuectl_schedules SET paused = $2 WHERE name = $1

-- name: list_schedules
-- Every schedule with its last job's state, and the database's "now" (one row, with NULLs,
-- when there is no schedule).
SELECT {now} AS now, s.name, s.cron, s.tz, s.no_overlap, s.spec, s.paused, s.created_at,
       s.last_fire_at, s.last_job_id, j.state AS last_job_state
  FROM (SELECT NULL) AS one
  LEFT JOIN queuectl_schedules AS s ON true
  LEFT JOIN queuectl_jobs AS j ON j.id = s.last_job_id
 ORDER BY s.name

-- name: insert_tick
-- The (schedule, fire time) row, after take_tick: a second guard, and the tick's record.
INSERT INTO queuectl_schedule_ticks (schedule, fire_at, job_id) VALUES ($1, $2, NULL)
ON CONFLICT (schedule, fire_at) DO NOTHING
RETURNING schedule

-- name: take_tick
-- Only forward, and not while paused: an engine that read the schedule before another took a
-- later tick cannot take an earlier one (the row lock makes it read the row again).
UPDATE queuectl_schedules SET last_fire_at = $2
 WHERE name = $1 AND NOT paused AND (last_fire_at IS NULL OR last_fire_at < $2)
RETURNING name

-- name: record_tick_job
-- The tick's job, on the tick and on its schedule (for --no-overlap and `schedule list`).
WITH tick AS (UPDATE queuectl_schedule_ticks SET job_id = $3
               WHERE schedule = $1 AND fire_at = $2)
UPDATE queuectl_schedules SET last_job_id = $3 WHERE name = $1

-- name: prune_ticks
-- Keep the latest $2 ticks of the schedule: older ones guard nothing (take_tick only moves
-- forward) and would grow by one a minute.
DELETE FROM queuectl_schedule_ticks
 WHERE schedule = $1
   AND fire_at < (SELECT fire_at FROM queuectl_schedule_ticks WHERE schedule = $1
                   ORDER BY fire_at DESC LIMIT 1 OFFSET $2)
