-- Records of one event type, newest first: the integrity-check listing reads a tenant's
-- integrity_check records this way, and a full scan of a million-record chain would be far too
-- slow for that. Queries name this index (INDEXED BY) for the same reason as records_by_event_id:
-- without statistics SQLite's planner may prefer the primary key and scan the whole tenant.
CREATE INDEX records_by_type ON records (tenant_id, event_type, seq);
