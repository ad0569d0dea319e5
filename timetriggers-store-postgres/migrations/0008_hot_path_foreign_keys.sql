-- The two foreign keys checked for every scheduled job go (docs/decisions.md, decision 31).
--
-- `jobs.project_id → projects` and `executions.job_id → jobs` each ran a trigger per inserted
-- row (a `SELECT … FOR KEY SHARE` of the parent, which also writes a lock onto it); without
-- them W1 schedules about a fifth faster (interleaved runs). What they guaranteed is kept by
-- the store's own statements:
--
-- * Projects are never deleted, and every insert of a job reads its project first (the
--   batched insert joins `projects`; every other path reads its quota and answers NotFound).
-- * An execution is only ever inserted with its job (same statement or transaction), or for
--   a job that exists and is locked (retries, replays, occurrences). The two places that
--   delete a job (a registered job becoming a generator, a generator's pending occurrence)
--   delete its executions in the same statement, as the cascade did.
--
-- The other foreign keys stay: they are not on the path of every job.
ALTER TABLE executions DROP CONSTRAINT executions_job_id_fkey;
ALTER TABLE jobs DROP CONSTRAINT jobs_project_id_fkey;
