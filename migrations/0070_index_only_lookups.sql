-- `replay_append` runs before every command's append (`append_many_in` answers a retried
-- append up front), and on the slow paths of every other append. Its lookup of the event ids
-- must probe `events_event_id_key`. The planner may instead pick a hash join over a scan of
-- the whole table: the unnested ids have no statistics, and a plan made while the table was
-- small stays cached in the session until the next ANALYZE. Measured with the API benchmark
-- on a fresh namespace: one scan of every event per command, a third of the server's CPU time.
-- Every lookup in the function has an index, so sequential scans are simply ruled out.
ALTER FUNCTION replay_append(text[], integer[], uuid[]) SET enable_seqscan = off;
