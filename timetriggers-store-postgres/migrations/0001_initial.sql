-- TimeTriggers on PostgreSQL: the initial schema.
--
-- Every object is created unqualified, in the store's own schema (`timetriggers` unless told
-- otherwise): the store puts that schema alone on the connections' search_path, so these
-- tables, and sqlx's `_sqlx_migrations`, live there and nowhere else.
--
-- Conventions: ids are TEXT; instants are BIGINT milliseconds since the Unix epoch (never
-- computed by SQL: every time is a parameter; `to_timestamp(x / 1000.0)` shows one); request
-- headers are JSONB arrays of [name, value] pairs (order and duplicates kept); tags are TEXT[];
-- bodies are BYTEA (a response body is kept as its UTF-8 bytes, so a NUL byte survives).

CREATE TABLE projects (
    id          TEXT   PRIMARY KEY,
    slug        TEXT   NOT NULL UNIQUE,
    month_quota BIGINT NULL CHECK (month_quota IS NULL OR month_quota >= 0), -- NULL: unlimited
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT   PRIMARY KEY,
    project_id TEXT   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       TEXT   NOT NULL,
    key_hash   TEXT   NOT NULL UNIQUE,
    masked     TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX api_keys_project ON api_keys (project_id);

-- Billable units per project and calendar month ('YYYY-MM', UTC), spread over shards: a
-- project's usage is the sum of its shards. Concurrent upserts of a project with an unlimited
-- quota each add to a random shard, so they do not queue behind one hot row until commit; a
-- project with a finite quota locks its project row, sums, and then charges (exact).
CREATE TABLE quota_usage (
    project_id TEXT     NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    month      TEXT     NOT NULL,
    shard      SMALLINT NOT NULL CHECK (shard >= 0),
    used       BIGINT   NOT NULL CHECK (used >= 0),
    PRIMARY KEY (project_id, month, shard)
);

CREATE TABLE jobs (
    id                 TEXT    PRIMARY KEY,
    project_id         TEXT    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    custom_key         TEXT    NULL,
    title              TEXT    NULL,
    status             TEXT    NOT NULL CHECK (status IN
                           ('registered', 'queued', 'running', 'completed', 'cancelled', 'skipped')),
    scheduled_at       BIGINT  NOT NULL,
    method             TEXT    NOT NULL,
    url                TEXT    NOT NULL,
    headers            JSONB   NOT NULL,
    body               BYTEA   NOT NULL,
    tags               TEXT[]  NOT NULL,
    max_attempts       INTEGER NOT NULL CHECK (max_attempts >= 1),
    timeout_ms         BIGINT  NOT NULL CHECK (timeout_ms >= 0),
    origin             TEXT    NOT NULL CHECK (origin IN ('schedule', 'declare', 'bulk')),
    registered_at      BIGINT  NOT NULL,
    cancelled_at       BIGINT  NULL,
    queued_at          BIGINT  NULL,
    started_at         BIGINT  NULL,
    completed_at       BIGINT  NULL,
    last_attempt       INTEGER NULL,
    last_status        INTEGER NULL,
    last_error         TEXT    NULL,
    rate_limited_at    BIGINT  NULL,
    rate_limited_until BIGINT  NULL,
    rate_limited_tags  TEXT[]  NOT NULL DEFAULT '{}',
    -- The generator that made this job (generators come in a later migration).
    generator_id       TEXT    NULL
);

-- A custom key is unique among the project's live jobs; a finished job releases it by leaving
-- the index. Concurrent upserts of one key are serialised by a transaction-scoped advisory
-- lock on (project, key) before they look; this index is the backstop.
CREATE UNIQUE INDEX jobs_live_custom_key ON jobs (project_id, custom_key)
    WHERE custom_key IS NOT NULL AND status IN ('registered', 'queued', 'running');

CREATE TABLE executions (
    id                 TEXT    PRIMARY KEY,
    job_id             TEXT    NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    project_id         TEXT    NOT NULL,
    attempt_number     INTEGER NOT NULL CHECK (attempt_number >= 1),
    triggered_by       TEXT    NOT NULL CHECK (triggered_by IN ('scheduler', 'retry', 'replay')),
    status             TEXT    NOT NULL CHECK (status IN ('planned', 'started', 'complete', 'cancelled')),
    planned_at         BIGINT  NOT NULL,
    -- When the engine may take it: planned_at, or later while a rate limit holds it back.
    due_at             BIGINT  NOT NULL,
    started_at         BIGINT  NULL,
    completed_at       BIGINT  NULL,
    -- Until when the claiming engine owns it; afterwards another engine may recover it.
    lease_until        BIGINT  NULL,
    worker             TEXT    NULL,
    response_status    INTEGER NULL,
    response_headers   JSONB   NULL,
    response_body      BYTEA   NULL,
    response_size      BIGINT  NULL,
    error_message      TEXT    NULL,
    rate_limited_at    BIGINT  NULL,
    rate_limited_until BIGINT  NULL,
    rate_limited_tags  TEXT[]  NOT NULL DEFAULT '{}'
);

-- Claims and next_due_at only ever look at planned executions: with a million far-future jobs
-- pending they stay an index seek.
CREATE INDEX executions_planned_due ON executions (due_at) WHERE status = 'planned';
-- Lease recovery only ever looks at started executions.
CREATE INDEX executions_started_lease ON executions (lease_until) WHERE status = 'started';
CREATE INDEX executions_job ON executions (job_id, attempt_number);
