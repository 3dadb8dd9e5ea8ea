-- Where processing stands: the current stage (uploading, probing,
-- transcoding, previewing, ready, failed) and each rung's state, as a JSON
-- object {"360p": "encoding" | "previewable" | "done" | "restarting" | "failed"}.
ALTER TABLE assets ADD COLUMN stage TEXT;
ALTER TABLE assets ADD COLUMN rungs TEXT;
