ALTER TABLE sync_runs DROP COLUMN unread_controllers;
