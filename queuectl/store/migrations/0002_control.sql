-- Step 2: control of engines on other hosts through the database. `worker stop --all` marks
-- the engines (stop_requested: 'finish' lets their running jobs finish, 'kill' kills them);
-- `cancel ID` of a job running anywhere marks the job. Each engine reads what was asked of it
-- every second (engine/requests.py). The engines' concurrency is kept with their heartbeat.
ALTER TABLE queuectl_engines ADD COLUMN stop_requested text
    CHECK (stop_requested IN ('finish', 'kill'));
ALTER TABLE queuectl_jobs ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
-- each engine's running jobs: its renewal, its requests, and `status`
CREATE INDEX queuectl_jobs_owner ON queuectl_jobs (lease_owner) WHERE state = 'processing';
