-- Domain controllers whose lastLogon a sync run could not read (JSON array of "url: reason").
ALTER TABLE sync_runs ADD COLUMN unread_controllers TEXT;
