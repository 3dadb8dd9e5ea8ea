-- The node recording a live asset (status `recording`): when that node
-- restarts it fails its own unfinished recordings, never another node's.
-- NULL for uploads, and for recordings from before several nodes.
ALTER TABLE assets ADD COLUMN node TEXT;
