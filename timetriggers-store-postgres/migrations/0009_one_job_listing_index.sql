-- One index for the job listing instead of two (docs/decisions.md, decision 32).
--
-- `GET /jobs` lists a project's jobs newest `scheduledAt` first, optionally filtered by
-- status. `jobs_project_scheduled (project_id, scheduled_at, id)` served the unfiltered
-- listing and `jobs_project_status_scheduled (project_id, status, scheduled_at, id)` the
-- filtered one; every job paid for an entry in both, and every claim and outcome (non-HOT
-- updates of the job) for a new entry in both. Now one index in listing order carries the
-- status as an included column. The listing's total (`COUNT(*)`) still reads only the index,
-- the status included. The page query (which sorts the project's matching jobs, as before:
-- `project_id = ANY(…)` does not keep index order) now checks the status of each of the
-- project's jobs instead of seeking the status: a status that is rare in a very large
-- project costs a walk over the project's jobs, where the unfiltered listing and the total
-- already walked them.
CREATE INDEX jobs_project_listing ON jobs (project_id, scheduled_at, id) INCLUDE (status);
DROP INDEX jobs_project_scheduled;
DROP INDEX jobs_project_status_scheduled;
