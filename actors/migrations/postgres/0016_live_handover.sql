-- What a node that takes a live stream over needs to continue its
-- presentation (the publisher reconnected there): the owner records it at
-- each renewal, and at once when its publisher leaves (`awaiting`, 0 or
-- 1: it waits for the publisher, and another node may take the stream).
-- `handover` is the text of streamforge_protocols::live::Handover (the
-- timeline, the next numbers, the segments each rendition lists); NULL
-- while the stream has no presentation yet.
ALTER TABLE live_owners ADD COLUMN awaiting BIGINT NOT NULL DEFAULT 0;
ALTER TABLE live_owners ADD COLUMN handover TEXT;
