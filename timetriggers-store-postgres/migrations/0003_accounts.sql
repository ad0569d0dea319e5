-- Dashboard accounts: users, their sessions and their project memberships; and the indexes
-- behind the dashboard's job and execution listings.

CREATE TABLE users (
    id            TEXT   PRIMARY KEY,
    -- Normalised (trimmed, lower-case) by the service; compared exactly.
    email         TEXT   NOT NULL UNIQUE,
    -- argon2id PHC string.
    password_hash TEXT   NOT NULL,
    created_at    BIGINT NOT NULL
);

-- Which users may see which projects. The first membership of a user (by joined_at) is their
-- default project.
CREATE TABLE project_members (
    user_id    TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id TEXT   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    role       TEXT   NOT NULL DEFAULT 'owner' CHECK (role IN ('owner')),
    joined_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, project_id)
);

CREATE INDEX project_members_project ON project_members (project_id);

-- Sessions are stored by the SHA-256 of their token, never the token itself. Revoking deletes
-- the row; a session is live while now < expires_at (now is always a parameter).
CREATE TABLE sessions (
    token_hash TEXT   PRIMARY KEY,
    user_id    TEXT   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX sessions_user_expiry ON sessions (user_id, expires_at);

-- GET /jobs: newest scheduled_at first within a project, optionally by status.
CREATE INDEX jobs_project_scheduled ON jobs (project_id, scheduled_at, id);
CREATE INDEX jobs_project_status_scheduled ON jobs (project_id, status, scheduled_at, id);
-- GET /executions?customKey=…: every job that ever held the key, not only the live one.
CREATE INDEX jobs_project_custom_key ON jobs (project_id, custom_key)
    WHERE custom_key IS NOT NULL;
-- GET /executions: newest planned_at first within a project.
CREATE INDEX executions_project_planned ON executions (project_id, planned_at, id);
