-- Up Migration

-- The relay makes each message's MQTT topic from the message (site, line, station) and its own
-- prefix when it publishes: where a verdict goes is the MES output's business, not the record's.
ALTER TABLE outbox DROP COLUMN topic;

-- Down Migration
ALTER TABLE outbox ADD COLUMN topic text;
