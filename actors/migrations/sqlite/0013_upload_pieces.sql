-- Where an upload's bytes are while it arrives when they are kept in the
-- object store (remote storage): its pieces, in order, as "start.writer"
-- words (`uploads/{upload}/{start}.{writer}`), updated in the same statement
-- as the durable offset. NULL: an append file on the holder's disk.
ALTER TABLE uploads ADD COLUMN pieces TEXT;
