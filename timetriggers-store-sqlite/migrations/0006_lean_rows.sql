-- Fewer B-trees per job (docs/decisions.md, decision 24).
--
-- * `jobs` and `executions` become WITHOUT ROWID tables: the row lives in its primary-key
--   B-tree, so a job costs one B-tree where it cost two (the rowid table and the index behind
--   `id TEXT PRIMARY KEY`), and a lookup by id is one seek instead of two. Ids sort in creation
--   order, so new rows append.
-- * `jobs_origin` goes: the declare sync could only seek its `project_id` (its query was an
--   OR), yet every job paid for an entry. `jobs_declared` holds only the jobs `/declare` made,
--   and the sync reads them with a seek of it (store `sync.rs`).
-- * The CHECK constraints on the two tables are spelled with `OR`, not `IN`: SQLite builds a
--   temporary B-tree for every `IN` list of more than two values, on every INSERT.
--
-- Rebuilt with renames so that foreign keys stay on: renaming `jobs` repoints the reference
-- of `executions_old`, so dropping the old tables deletes nothing through a cascade.

ALTER TABLE executions RENAME TO executions_old;
ALTER TABLE jobs RENAME TO jobs_old;

CREATE TABLE jobs (
    id                 TEXT    NOT NULL PRIMARY KEY,
    project_id         TEXT    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    custom_key         TEXT    NULL,
    title              TEXT    NULL,
    status             TEXT    NOT NULL CHECK (status = 'registered' OR status = 'queued'
                           OR status = 'running' OR status = 'completed' OR status = 'cancelled'
                           OR status = 'skipped'),
    scheduled_at       INTEGER NOT NULL,
    method             TEXT    NOT NULL,
    url                TEXT    NOT NULL,
    headers            TEXT    NOT NULL,
    body               BLOB    NOT NULL,
    tags               TEXT    NOT NULL,
    max_attempts       INTEGER NOT NULL CHECK (max_attempts >= 1),
    timeout_ms         INTEGER NOT NULL CHECK (timeout_ms >= 0),
    origin             TEXT    NOT NULL CHECK (origin = 'schedule' OR origin = 'declare'
                           OR origin = 'bulk'),
    registered_at      INTEGER NOT NULL,
    cancelled_at       INTEGER NULL,
    queued_at          INTEGER NULL,
    started_at         INTEGER NULL,
    completed_at       INTEGER NULL,
    last_attempt       INTEGER NULL,
    last_status        INTEGER NULL,
    last_error         TEXT    NULL,
    rate_limited_at    INTEGER NULL,
    rate_limited_until INTEGER NULL,
    rate_limited_tags  TEXT    NOT NULL DEFAULT '[]',
    -- The generator that made this job.
    generator_id       TEXT    NULL,
    -- The `scheduledAt` a declared item was written with (compared on the next `/declare`).
    spec               TEXT    NULL
) WITHOUT ROWID;

INSERT INTO jobs (id, project_id, custom_key, title, status, scheduled_at, method, url, headers,
    body, tags, max_attempts, timeout_ms, origin, registered_at, cancelled_at, queued_at,
    started_at, completed_at, last_attempt, last_status, last_error, rate_limited_at,
    rate_limited_until, rate_limited_tags, generator_id, spec)
SELECT id, project_id, custom_key, title, status, scheduled_at, method, url, headers,
    body, tags, max_attempts, timeout_ms, origin, registered_at, cancelled_at, queued_at,
    started_at, completed_at, last_attempt, last_status, last_error, rate_limited_at,
    rate_limited_until, rate_limited_tags, generator_id, spec
FROM jobs_old;

CREATE TABLE executions (
    id                 TEXT    NOT NULL PRIMARY KEY,
    job_id             TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    project_id         TEXT    NOT NULL,
    attempt_number     INTEGER NOT NULL CHECK (attempt_number >= 1),
    triggered_by       TEXT    NOT NULL CHECK (triggered_by = 'scheduler'
                           OR triggered_by = 'retry' OR triggered_by = 'replay'),
    status             TEXT    NOT NULL CHECK (status = 'planned' OR status = 'started'
                           OR status = 'complete' OR status = 'cancelled'),
    planned_at         INTEGER NOT NULL,
    -- When the engine may take it: planned_at, or later while a rate limit holds it back.
    due_at             INTEGER NOT NULL,
    started_at         INTEGER NULL,
    completed_at       INTEGER NULL,
    lease_until        INTEGER NULL,
    worker             TEXT    NULL,
    response_status    INTEGER NULL,
    response_headers   TEXT    NULL,
    response_body      TEXT    NULL,
    response_size      INTEGER NULL,
    error_message      TEXT    NULL,
    rate_limited_at    INTEGER NULL,
    rate_limited_until INTEGER NULL,
    rate_limited_tags  TEXT    NOT NULL DEFAULT '[]'
) WITHOUT ROWID;

INSERT INTO executions (id, job_id, project_id, attempt_number, triggered_by, status, planned_at,
    due_at, started_at, completed_at, lease_until, worker, response_status, response_headers,
    response_body, response_size, error_message, rate_limited_at, rate_limited_until,
    rate_limited_tags)
SELECT id, job_id, project_id, attempt_number, triggered_by, status, planned_at,
    due_at, started_at, completed_at, lease_until, worker, response_status, response_headers,
    response_body, response_size, error_message, rate_limited_at, rate_limited_until,
    rate_limited_tags
FROM executions_old;

-- The old tables take their indexes with them.
DROP TABLE executions_old;
DROP TABLE jobs_old;

-- jobs: every index of migrations 0001-0004 but `jobs_origin`.
CREATE UNIQUE INDEX jobs_live_custom_key ON jobs (project_id, custom_key)
    WHERE custom_key IS NOT NULL AND status IN ('registered', 'queued', 'running');
CREATE INDEX jobs_generator ON jobs (generator_id) WHERE generator_id IS NOT NULL;
CREATE INDEX jobs_project_scheduled ON jobs (project_id, scheduled_at, id);
CREATE INDEX jobs_project_status_scheduled ON jobs (project_id, status, scheduled_at, id);
CREATE INDEX jobs_project_custom_key ON jobs (project_id, custom_key)
    WHERE custom_key IS NOT NULL;
-- Only what `/declare` made: the sync's second half seeks it.
CREATE INDEX jobs_declared ON jobs (project_id)
    WHERE origin = 'declare' AND generator_id IS NULL;

-- executions: every index of migrations 0001-0005.
CREATE INDEX executions_planned_due ON executions (due_at, planned_at) WHERE status = 'planned';
CREATE INDEX executions_started_lease ON executions (lease_until) WHERE status = 'started';
CREATE INDEX executions_job ON executions (job_id, attempt_number);
CREATE INDEX executions_project_planned ON executions (project_id, planned_at, id);
CREATE INDEX executions_rate_limited ON executions (project_id)
    WHERE status = 'planned' AND rate_limited_until IS NOT NULL;
