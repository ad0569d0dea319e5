-- Declarative sync: the `scheduledAt` an item was declared with, compared as written on the
-- next `/declare` (so that relative times like `now | add 1h` do not update every sync).
ALTER TABLE jobs ADD COLUMN spec TEXT NULL;
ALTER TABLE generators ADD COLUMN spec TEXT NULL;
-- `/declare` reads the items it manages.
CREATE INDEX jobs_origin ON jobs (project_id, origin) WHERE generator_id IS NULL;
-- `/bulk` cancels by tag: registered one-off jobs and active generators carrying it.
CREATE INDEX jobs_registered_tags ON jobs USING gin (tags)
    WHERE status = 'registered' AND generator_id IS NULL;
CREATE INDEX generators_active_tags ON generators USING gin (tags) WHERE status = 'active';
