-- The decisions view loses its own index by event id. A decision is looked up by id through the
-- ledger's unique index on (tenant_id, event_id), which gives its sequence number, the view's key;
-- follow-ups update their decision's row by that sequence number, which the runner reads from the
-- ledger with the decision's other facts. Each new decision row costs one B-tree insert fewer, and
-- the largest: the event id is the view's longest key.
DROP INDEX proj_decisions_by_event;
