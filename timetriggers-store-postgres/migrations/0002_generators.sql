-- Generators: cron series that keep exactly one pending occurrence job (jobs.generator_id).
-- Generators and jobs share one id space.
--
-- Lock order, everywhere: a generator row before any of its occurrence jobs, a job before its
-- executions. The claim, which takes occurrence jobs first, never waits for a generator: it
-- leaves an occurrence whose generator is locked for its next round (SKIP LOCKED).

CREATE TABLE generators (
    id                 TEXT    PRIMARY KEY,
    project_id         TEXT    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    custom_key         TEXT    NULL,
    title              TEXT    NULL,
    status             TEXT    NOT NULL CHECK (status IN ('active', 'cancelled')),
    expression         TEXT    NOT NULL,
    timezone           TEXT    NOT NULL,
    run_missed         BOOLEAN NOT NULL,
    method             TEXT    NOT NULL,
    url                TEXT    NOT NULL,
    headers            JSONB   NOT NULL,
    body               BYTEA   NOT NULL,
    tags               TEXT[]  NOT NULL,
    max_attempts       INTEGER NOT NULL CHECK (max_attempts >= 1),
    timeout_ms         BIGINT  NOT NULL CHECK (timeout_ms >= 0),
    origin             TEXT    NOT NULL CHECK (origin IN ('schedule', 'declare', 'bulk')),
    created_at         BIGINT  NOT NULL,
    -- When the definition last changed (creation or reschedule): the series starts after it.
    defined_at         BIGINT  NOT NULL,
    cancelled_at       BIGINT  NULL,
    -- The one registered occurrence; NULL between an occurrence firing and the next being made.
    pending_job_id     TEXT    NULL,
    -- The time of the last occurrence that fired, was cancelled or was skipped.
    last_occurrence_at BIGINT  NULL
);

CREATE UNIQUE INDEX generators_live_custom_key ON generators (project_id, custom_key)
    WHERE custom_key IS NOT NULL AND status = 'active';
-- The engine's "which series need their next occurrence" scan stays on active generators.
CREATE INDEX generators_active ON generators (pending_job_id) WHERE status = 'active';
CREATE INDEX jobs_generator ON jobs (generator_id) WHERE generator_id IS NOT NULL;
