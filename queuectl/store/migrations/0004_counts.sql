-- Step 4: jobs per (queue, state), kept by triggers in the transaction of each change (issue
-- 14), so that `status`, `queue list`, the dashboard and /metrics read a few rows instead of
-- counting every job. The triggers are on the table, so every way a job is inserted, moved or
-- deleted is counted: the store's statements, the dependency trigger's own updates (their
-- statements fire these triggers in turn), and TRUNCATE.
--
-- No hot row: the counters are deltas, appended and never updated. One counter row per
-- (queue, state), updated by every claim and every finish, would make each engine's commit
-- wait on the row lock of the one before it (and two transactions taking two such rows in
-- opposite orders would deadlock); an INSERT takes no lock that another transaction waits for.
-- The triggers are statement-level, with transition tables: a claim of 20 jobs appends one row
-- for 'pending' (-20) and one for 'processing' (+20), not 40. A reader sums the table, which
-- stays small: now and then (1 statement in 100) a trigger folds every delta it sees into one
-- row per (queue, state), unless another transaction is folding (a try-lock: nobody waits).
-- Folding deletes committed rows and inserts their sums in one transaction, so that a reader
-- sees the rows before or after it, never a mix; a delta not yet committed is not seen, so not
-- folded: it is folded by a later fold.
--
-- Writers are held off while the table is filled (SHARE ROW EXCLUSIVE, released at commit),
-- so that no job changes between the count and the triggers' start.

LOCK TABLE queuectl_jobs IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE queuectl_counts (
    queue text NOT NULL,
    state text NOT NULL,
    n     bigint NOT NULL
);
INSERT INTO queuectl_counts (queue, state, n)
SELECT queue, state, count(*) FROM queuectl_jobs GROUP BY queue, state;

CREATE FUNCTION queuectl_fold_counts() RETURNS void LANGUAGE sql AS $$
    WITH folded AS (DELETE FROM queuectl_counts RETURNING queue, state, n)
    INSERT INTO queuectl_counts (queue, state, n)
    SELECT queue, state, sum(n) FROM folded GROUP BY queue, state HAVING sum(n) <> 0
$$;

CREATE FUNCTION queuectl_count_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO queuectl_counts (queue, state, n)
        SELECT queue, state, count(*) FROM counted_new GROUP BY queue, state;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO queuectl_counts (queue, state, n)
        SELECT queue, state, -count(*) FROM counted_old GROUP BY queue, state;
    ELSE  -- most updates move no job (a renewal, a pid): they append nothing
        INSERT INTO queuectl_counts (queue, state, n)
        SELECT queue, state, sum(n) FROM (
            SELECT queue, state, -1 AS n FROM counted_old
            UNION ALL
            SELECT queue, state, 1 FROM counted_new
        ) AS moved
        GROUP BY queue, state HAVING sum(n) <> 0;
    END IF;
    IF random() < 0.01 THEN  -- (nested: SQL does not promise to evaluate AND in order)
        -- the key: b"qcounts!" read as a signed 64-bit integer
        IF pg_try_advisory_xact_lock(8170496699135193889) THEN
            PERFORM queuectl_fold_counts();
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER queuectl_jobs_count_insert AFTER INSERT ON queuectl_jobs
    REFERENCING NEW TABLE AS counted_new
    FOR EACH STATEMENT EXECUTE FUNCTION queuectl_count_jobs();
-- (a trigger with transition tables cannot name columns: it fires on every UPDATE)
CREATE TRIGGER queuectl_jobs_count_update AFTER UPDATE ON queuectl_jobs
    REFERENCING OLD TABLE AS counted_old NEW TABLE AS counted_new
    FOR EACH STATEMENT EXECUTE FUNCTION queuectl_count_jobs();
CREATE TRIGGER queuectl_jobs_count_delete AFTER DELETE ON queuectl_jobs
    REFERENCING OLD TABLE AS counted_old
    FOR EACH STATEMENT EXECUTE FUNCTION queuectl_count_jobs();

CREATE FUNCTION queuectl_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM queuectl_counts;
    RETURN NULL;
END
$$;
CREATE TRIGGER queuectl_jobs_count_truncate AFTER TRUNCATE ON queuectl_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION queuectl_count_truncated();
