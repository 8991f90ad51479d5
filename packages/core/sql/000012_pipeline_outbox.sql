-- RabbitMQ dispatch: the outbox of 000011 is filled by a trigger, so every
-- path that makes a stage Pending (creation, a released dependent, a due
-- retry, a rerun, an approval, an append) writes its message in the same
-- transaction without the engine knowing which dispatch runs. A relay in
-- each RabbitMQ control plane publishes the rows with confirms and deletes
-- them; a publish that fails leaves its row to be published again.

-- One row. `rabbitmq_until` is a lease the RabbitMQ control planes renew
-- while they run: when the last one stops (or the fleet goes back to
-- PostgreSQL dispatch) the trigger stops writing rows nobody relays.
-- `changes_owner` is the one control plane that forwards live updates to
-- the broker's fanout, so each change is published there once, not once
-- per replica.
CREATE TABLE _onepipe_pipeline_settings (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  rabbitmq_until timestamptz,
  relay_channel text,
  changes_owner text,
  changes_until timestamptz
);

INSERT INTO _onepipe_pipeline_settings (id) VALUES (true);

-- The tables are found through the session's search_path, as every other
-- OnePipe statement finds them (each connection is set to its schema): a
-- `SET search_path FROM CURRENT` here measured twice the cost per call.
CREATE FUNCTION _onepipe_pipeline_outbox_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  ch text;
BEGIN
  SELECT relay_channel INTO ch FROM _onepipe_pipeline_settings WHERE rabbitmq_until > now();
  IF FOUND THEN
    INSERT INTO _onepipe_pipeline_outbox (app_id, handler, stage_id) VALUES (NEW.app_id, NEW.handler, NEW.id);
    -- One payload for all: PostgreSQL folds identical notifications of a transaction into one.
    IF ch IS NOT NULL THEN
      PERFORM pg_notify(ch, '');
    END IF;
  END IF;
  RETURN NULL;
END
$$;

-- The WHEN clauses keep every other status change (claims, acks) from
-- calling the function at all: PostgreSQL dispatch pays one settings
-- lookup per stage made Pending, nothing more.
CREATE TRIGGER _onepipe_pipeline_outbox_insert AFTER INSERT ON _onepipe_pipeline_stages
  FOR EACH ROW WHEN (NEW.status = 'Pending') EXECUTE FUNCTION _onepipe_pipeline_outbox_enqueue();

CREATE TRIGGER _onepipe_pipeline_outbox_update AFTER UPDATE OF status ON _onepipe_pipeline_stages
  FOR EACH ROW WHEN (NEW.status = 'Pending' AND OLD.status IS DISTINCT FROM 'Pending') EXECUTE FUNCTION _onepipe_pipeline_outbox_enqueue();
