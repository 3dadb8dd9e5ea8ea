-- What ffprobe found in an asset's original (JSON), and where processing is:
-- status moves uploaded -> processing -> ready | failed, with the reason in `error`.
ALTER TABLE assets ADD COLUMN probe TEXT;
ALTER TABLE assets ADD COLUMN updated_at INTEGER;
