-- TimeTriggers on SQLite: the initial schema.
--
-- Conventions: ids are TEXT; instants are INTEGER milliseconds since the Unix epoch (never
-- computed by SQL: every time is a parameter); headers are JSON arrays of [name, value] pairs
-- (order and duplicates kept); tags are JSON arrays of strings; request bodies are BLOBs.

CREATE TABLE projects (
    id          TEXT    PRIMARY KEY,
    slug        TEXT    NOT NULL UNIQUE,
    month_quota INTEGER NULL CHECK (month_quota IS NULL OR month_quota >= 0), -- NULL: unlimited
    created_at  INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT    PRIMARY KEY,
    project_id TEXT    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    key_hash   TEXT    NOT NULL UNIQUE,
    masked     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX api_keys_project ON api_keys (project_id);

-- Billable units per project and calendar month ('YYYY-MM', UTC).
CREATE TABLE quota_usage (
    project_id TEXT    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    month      TEXT    NOT NULL,
    used       INTEGER NOT NULL CHECK (used >= 0),
    PRIMARY KEY (project_id, month)
) WITHOUT ROWID;

CREATE TABLE jobs (
    id                 TEXT    PRIMARY KEY,
    project_id         TEXT    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    custom_key         TEXT    NULL,
    title              TEXT    NULL,
    status             TEXT    NOT NULL CHECK (status IN
                           ('registered', 'queued', 'running', 'completed', 'cancelled', 'skipped')),
    scheduled_at       INTEGER NOT NULL,
    method             TEXT    NOT NULL,
    url                TEXT    NOT NULL,
    headers            TEXT    NOT NULL,
    body               BLOB    NOT NULL,
    tags               TEXT    NOT NULL,
    max_attempts       INTEGER NOT NULL CHECK (max_attempts >= 1),
    timeout_ms         INTEGER NOT NULL CHECK (timeout_ms >= 0),
    origin             TEXT    NOT NULL CHECK (origin IN ('schedule', 'declare', 'bulk')),
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
    -- The generator that made this job (generators come in a later migration).
    generator_id       TEXT    NULL
);

-- A custom key is unique among the project's live jobs; a finished job releases it by leaving
-- the index. The store's key lookups repeat this WHERE clause word for word so that SQLite
-- uses the index.
CREATE UNIQUE INDEX jobs_live_custom_key ON jobs (project_id, custom_key)
    WHERE custom_key IS NOT NULL AND status IN ('registered', 'queued', 'running');

CREATE TABLE executions (
    id                 TEXT    PRIMARY KEY,
    job_id             TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    project_id         TEXT    NOT NULL,
    attempt_number     INTEGER NOT NULL CHECK (attempt_number >= 1),
    triggered_by       TEXT    NOT NULL CHECK (triggered_by IN ('scheduler', 'retry', 'replay')),
    status             TEXT    NOT NULL CHECK (status IN ('planned', 'started', 'complete', 'cancelled')),
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
);

-- Claims and next_due_at only ever look at planned executions: with a million far-future jobs
-- pending they stay an index seek.
CREATE INDEX executions_planned_due ON executions (due_at) WHERE status = 'planned';
-- Lease recovery only ever looks at started executions.
CREATE INDEX executions_started_lease ON executions (lease_until) WHERE status = 'started';
CREATE INDEX executions_job ON executions (job_id, attempt_number);
