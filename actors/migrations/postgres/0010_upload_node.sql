-- The node whose disk holds an upload's bytes while it arrives (its append
-- file): the only node that writes to it; the others forward its PATCHes
-- there. NULL for uploads from before several nodes (this node's).
ALTER TABLE uploads ADD COLUMN node TEXT;
