-- Claims take due executions by due time, then planned time (jobs held back by a rate limit
-- until the same instant are released in scheduledAt order), then id: one index range,
-- already in claim order.
DROP INDEX executions_planned_due;
CREATE INDEX executions_planned_due ON executions (due_at, planned_at, id) WHERE status = 'planned';
