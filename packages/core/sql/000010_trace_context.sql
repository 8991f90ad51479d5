-- Trace context carried with the work, so the trace an HTTP request started
-- goes on where the work is done, in this process or another: the W3C
-- traceparent of the span that started a workflow run (its executions'
-- spans continue it) and of the span that appended a flow event (its
-- deliveries continue it). Null when nothing was traced. Beside the data,
-- never inside it: a user's payload is stored as given.
ALTER TABLE _onepipe_workflows ADD COLUMN traceparent text;
ALTER TABLE _onepipe_flow_events ADD COLUMN traceparent text;
