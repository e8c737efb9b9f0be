-- Records of one event type, newest first: the integrity-check listing reads a tenant's
-- integrity_check records this way, and a full scan of a million-record chain would be far too
-- slow for that. Built inside the migration's transaction (not CONCURRENTLY), so appends wait
-- while it is built: apply it with `auditex migrate` before the new service version starts.
CREATE INDEX records_by_type ON records (tenant_id, event_type, seq);
