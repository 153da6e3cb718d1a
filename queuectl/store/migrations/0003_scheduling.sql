-- Step 3: scheduling. queue: the named queue a job belongs to (queuectl_queues holds the
-- limits and pauses of the queues that have any); unique_key: at most one live job per key
-- (the partial unique index); queuectl_deps: a blocked job's parents, resolved by a trigger
-- when a parent ends; schedules (cron) and the ticks they fired.
ALTER TABLE queuectl_jobs ADD COLUMN queue text NOT NULL DEFAULT 'default';
ALTER TABLE queuectl_jobs ADD COLUMN unique_key text;
CREATE UNIQUE INDEX queuectl_jobs_unique_live ON queuectl_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('blocked', 'pending', 'failed', 'processing');
CREATE INDEX queuectl_jobs_queue_runnable ON queuectl_jobs (queue, priority DESC, next_run_at, id)
    WHERE state IN ('pending', 'failed');
CREATE INDEX queuectl_jobs_queue_processing ON queuectl_jobs (queue) WHERE state = 'processing';
-- the claim's bound and the earliest due job per queue (store/postgres_queues.py)
CREATE INDEX queuectl_jobs_queue_due ON queuectl_jobs (queue, next_run_at)
    WHERE state IN ('pending', 'failed');
CREATE INDEX queuectl_jobs_queue_state ON queuectl_jobs (queue, state);

CREATE TABLE queuectl_queues (
    name        text PRIMARY KEY,
    concurrency integer,  -- NULL: only the engines' slots limit it
    paused      boolean NOT NULL DEFAULT false
);

CREATE TABLE queuectl_deps (
    child  text NOT NULL REFERENCES queuectl_jobs (id) ON DELETE CASCADE,
    parent text NOT NULL REFERENCES queuectl_jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (child, parent)
);
CREATE INDEX queuectl_deps_parent ON queuectl_deps (parent, child);

CREATE TABLE queuectl_schedules (
    name         text PRIMARY KEY,
    cron         text NOT NULL,
    tz           text NOT NULL,
    no_overlap   boolean NOT NULL DEFAULT false,
    spec         text NOT NULL,  -- the job options, JSON
    paused       boolean NOT NULL DEFAULT false,
    created_at   double precision NOT NULL,
    last_fire_at double precision,
    last_job_id  text
);
CREATE TABLE queuectl_schedule_ticks (
    schedule text NOT NULL,
    fire_at  double precision NOT NULL,
    job_id   text,
    PRIMARY KEY (schedule, fire_at)
);

-- Dependencies: when a job ends, its blocked children move on. Completed: a child whose
-- parents have all completed becomes pending (due at its run_at, or now). Dead or canceled,
-- or deleted before it completed: its blocked children are canceled, naming it, and so on
-- down the tree (each child canceled fires the trigger again). Resolutions take turns (a
-- transaction-scoped advisory lock, then statements with fresh snapshots), so that two parents
-- of one child completing at once in two transactions cannot each find the other unfinished.
CREATE FUNCTION queuectl_resolve_children() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ended queuectl_jobs%ROWTYPE;
BEGIN
    IF TG_OP = 'DELETE' THEN
        ended := OLD;
    ELSE
        ended := NEW;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM queuectl_deps AS d WHERE d.parent = ended.id) THEN
        RETURN ended;  -- the result of an AFTER trigger is ignored
    END IF;
    PERFORM pg_advisory_xact_lock(7381263420174837253);
    IF TG_OP = 'UPDATE' AND ended.state = 'completed' THEN
        UPDATE queuectl_jobs AS c
           SET state = 'pending', updated_at = ended.updated_at,
               next_run_at = greatest(c.run_at, ended.updated_at)
         WHERE c.state = 'blocked'
           AND c.id IN (SELECT d.child FROM queuectl_deps AS d WHERE d.parent = ended.id)
           AND NOT EXISTS (SELECT 1 FROM queuectl_deps AS d
                             JOIN queuectl_jobs AS p ON p.id = d.parent
                            WHERE d.child = c.id AND p.state <> 'completed');
    ELSE
        UPDATE queuectl_jobs AS c
           SET state = 'canceled', updated_at = ended.updated_at,
               finished_at = ended.updated_at, error_kind = 'canceled',
               last_error = 'canceled: its parent ' || ended.id || CASE TG_OP
                   WHEN 'DELETE' THEN ' was deleted' ELSE ' ended ' || ended.state END
         WHERE c.state = 'blocked'
           AND c.id IN (SELECT d.child FROM queuectl_deps AS d WHERE d.parent = ended.id);
    END IF;
    RETURN ended;
END
$$;
CREATE TRIGGER queuectl_jobs_resolve_children AFTER UPDATE OF state ON queuectl_jobs
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state
          AND (NEW.state = 'completed'
               OR (NEW.state IN ('dead', 'canceled') AND OLD.state NOT IN ('dead', 'canceled'))))
    EXECUTE FUNCTION queuectl_resolve_children();
-- After the delete, so that children deleted by the same statement are gone rather than
-- changed under it; named to sort before the foreign key's cascade ("RI_..."), which fires in
-- the same place and would remove the deps rows first (triggers fire in name order).
CREATE TRIGGER "Queuectl_jobs_deleted_parent" AFTER DELETE ON queuectl_jobs
    FOR EACH ROW WHEN (OLD.state <> 'completed')
    EXECUTE FUNCTION queuectl_resolve_children();
