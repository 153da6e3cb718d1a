-- Cron schedules (store/sqlite_schedule.py). The tables are in sqlite.sql's schema_v4.

-- name: add_schedule
INSERT INTO schedules (name, cron, tz, no_overlap, spec, paused, created_at)
VALUES (:name, :cron, :tz, :no_overlap, :spec, :paused, :now)

-- name: remove_schedule
DELETE FROM schedules WHERE name = ?

-- name: remove_schedule_ticks
DELETE FROM schedule_ticks WHERE schedule = ?

-- name: get_schedule
SELECT s.*, j.state AS last_job_state
  FROM schedules AS s LEFT JOIN jobs AS j ON j.id = s.last_job_id
 WHERE s.name = ?

-- name: list_schedules
SELECT s.*, j.state AS last_job_state
  FROM schedules AS s LEFT JOIN jobs AS j ON j.id = s.last_job_id
 ORDER BY s.name

-- name: set_schedule_paused
UPDATE schedules SET paused = :paused WHERE name = :name

-- name: insert_tick
-- The (schedule, fire time) row: a tick another transaction took already inserts nothing.
INSERT INTO schedule_ticks (schedule, fire_at, job_id) VALUES (:name, :fire_at, NULL)
ON CONFLICT (schedule, fire_at) DO NOTHING

-- name: take_tick
-- Only forward, and not while paused: a tick older than the last one taken is never taken.
UPDATE schedules SET last_fire_at = :fire_at
 WHERE name = :name AND NOT paused AND (last_fire_at IS NULL OR last_fire_at < :fire_at)

-- name: tick_job
UPDATE schedule_ticks SET job_id = :job_id WHERE schedule = :name AND fire_at = :fire_at

-- name: schedule_job
UPDATE schedules SET last_job_id = :job_id WHERE name = :name

-- name: prune_ticks
-- Keep the latest KEEP_TICKS ticks of the schedule: older ones guard nothing (take_tick only
-- moves forward) and would grow by one a minute.
DELETE FROM schedule_ticks
 WHERE schedule = :name
   AND fire_at < (SELECT fire_at FROM schedule_ticks WHERE schedule = :name
                   ORDER BY fire_at DESC LIMIT 1 OFFSET :keep)
