-- Per-tag rate limits (API.md §3, §5).

-- One rule per project and tag; a NULL limit leaves that window unlimited.
CREATE TABLE rate_limits (
    id         TEXT    PRIMARY KEY,
    project_id TEXT    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    tag        TEXT    NOT NULL,
    per_second INTEGER NULL CHECK (per_second IS NULL OR per_second >= 0),
    per_minute INTEGER NULL CHECK (per_minute IS NULL OR per_minute >= 0),
    per_hour   INTEGER NULL CHECK (per_hour IS NULL OR per_hour >= 0),
    per_day    INTEGER NULL CHECK (per_day IS NULL OR per_day >= 0),
    per_week   INTEGER NULL CHECK (per_week IS NULL OR per_week >= 0),
    per_month  INTEGER NULL CHECK (per_month IS NULL OR per_month >= 0),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (project_id, tag)
);

-- One row per started execution and tag that had a rule when it started: the claim reads the
-- L-th most recent start of a tag with one seek of this index (cost O(L), whatever the
-- history), and deletes rows older than the longest window (30 days) as it goes.
CREATE TABLE rate_usage (
    project_id TEXT    NOT NULL,
    tag        TEXT    NOT NULL,
    started_at INTEGER NOT NULL
);
CREATE INDEX rate_usage_tag_time ON rate_usage (project_id, tag, started_at);

-- Claims take due executions by due time, then planned time (jobs held back until the same
-- instant are released in scheduledAt order), still with one seek.
DROP INDEX executions_planned_due;
CREATE INDEX executions_planned_due ON executions (due_at, planned_at) WHERE status = 'planned';

-- Executions a rate limit holds back, for re-checking them when a rule changes.
CREATE INDEX executions_rate_limited ON executions (project_id)
    WHERE status = 'planned' AND rate_limited_until IS NOT NULL;
