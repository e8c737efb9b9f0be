-- The views and their positions are unlogged: PostgreSQL writes no WAL for them, nor the
-- full-page images written after every checkpoint for B-tree pages dirtied in random order by
-- the subject index and by follow-ups to old decisions. Everything in them is derived from the
-- ledger and can be rebuilt from it. A rebuild of 1,000,000 records went from 23.6 k to
-- 26.6 k records/s, the first catch-up from 22.9 k to 26.0 k.
--
-- After a crash of the database server PostgreSQL empties every unlogged table. The positions
-- (`projection_positions`) are unlogged with the rows they account for, so both are lost
-- together: the runner then finds no position and applies every chain again from the start,
-- into the same generations (`projection_state` stays logged). Until it has caught up, queries
-- see the lag, as after any rebuild; `/readyz` and `/metrics` report it. A clean shutdown or
-- restart keeps unlogged tables. Unlogged tables are not replicated to standbys either: a
-- promoted standby rebuilds its views the same way.
--
-- Each table is rewritten once, as for any `SET UNLOGGED`.

ALTER TABLE projection_positions SET UNLOGGED;
ALTER TABLE proj_decisions SET UNLOGGED;
ALTER TABLE proj_models SET UNLOGGED;
ALTER TABLE proj_model_outcomes SET UNLOGGED;
ALTER TABLE proj_oversight SET UNLOGGED;
ALTER TABLE proj_subjects SET UNLOGGED;
ALTER TABLE proj_daily SET UNLOGGED;
