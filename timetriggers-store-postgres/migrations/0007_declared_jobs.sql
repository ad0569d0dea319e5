-- `jobs_origin` goes (docs/decisions.md, decision 24): every job paid for an entry, while the
-- declare sync only needs the jobs `/declare` made. `jobs_declared` holds just those; the sync
-- reads the key holders and the declared jobs as two index lookups (store `sync.rs`).
DROP INDEX jobs_origin;
CREATE INDEX jobs_declared ON jobs (project_id) WHERE origin = 'declare' AND generator_id IS NULL;
