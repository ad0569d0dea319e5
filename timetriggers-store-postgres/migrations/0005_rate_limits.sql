-- Per-tag rate limits (API.md §3, §5). Same shape as the SQLite store's.
--
-- Lock order: a claim that checks rate limits locks its candidate executions and their jobs
-- (SKIP LOCKED), then the rules of the candidates' tags in id order (waiting: this is what
-- serialises the check-and-reserve of concurrent claimers), then records usage.

CREATE TABLE rate_limits (
    id         TEXT   PRIMARY KEY,
    project_id TEXT   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    tag        TEXT   NOT NULL,
    per_second BIGINT NULL CHECK (per_second IS NULL OR per_second >= 0),
    per_minute BIGINT NULL CHECK (per_minute IS NULL OR per_minute >= 0),
    per_hour   BIGINT NULL CHECK (per_hour IS NULL OR per_hour >= 0),
    per_day    BIGINT NULL CHECK (per_day IS NULL OR per_day >= 0),
    per_week   BIGINT NULL CHECK (per_week IS NULL OR per_week >= 0),
    per_month  BIGINT NULL CHECK (per_month IS NULL OR per_month >= 0),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (project_id, tag)
);

-- One row per started execution and ruled tag; the L-th most recent start of a tag is one
-- backward index scan of at most L entries.
CREATE TABLE rate_usage (
    project_id TEXT   NOT NULL,
    tag        TEXT   NOT NULL,
    started_at BIGINT NOT NULL
);
CREATE INDEX rate_usage_tag_time ON rate_usage (project_id, tag, started_at);

-- Executions a rate limit holds back, for re-checking them when a rule changes.
CREATE INDEX executions_rate_limited ON executions (project_id)
    WHERE status = 'planned' AND rate_limited_until IS NOT NULL;
