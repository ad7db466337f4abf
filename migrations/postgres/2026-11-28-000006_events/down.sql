DROP TABLE event_tokens;
