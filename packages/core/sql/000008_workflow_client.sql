-- Runs started by a WorkflowClient, from a process that does not have the
-- workflow's definition: their input has passed the value rule but not the
-- workflow's schema. The first executor validates it (a bad input fails the
-- run with VALIDATION_FAILED), stores the parsed value and sets the deadline
-- from the workflow's timeout, then sets this to true.
ALTER TABLE _onepipe_workflows ADD COLUMN input_checked boolean NOT NULL DEFAULT true;
