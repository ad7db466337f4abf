ALTER TABLE event_tokens DROP COLUMN directory_ids;
