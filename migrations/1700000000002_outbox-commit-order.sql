-- Up Migration

-- The relay sends the outbox in `seq` order, so `seq` must follow commit order: a sequence alone
-- does not (a transaction that took seq 100 can commit after one that took 101, and the relay
-- would send 101 first). Taking a transaction-scoped lock before the number makes writers of
-- verdict messages commit one after another from that point; it is held for the last
-- milliseconds of each such transaction only.
CREATE FUNCTION outbox_next_seq() RETURNS bigint AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('visq:outbox_order'));
  RETURN nextval('outbox_seq_seq');
END $$ LANGUAGE plpgsql VOLATILE;
ALTER TABLE outbox ALTER COLUMN seq SET DEFAULT outbox_next_seq();

-- Down Migration
ALTER TABLE outbox ALTER COLUMN seq SET DEFAULT nextval('outbox_seq_seq');
DROP FUNCTION outbox_next_seq;
