-- The feed's horizon counts only transactions that write events (see
-- docs/adr/0002-gap-free-global-feed.md, "Horizon").
--
-- The feed shows a row once no transaction that could still add a row before it is running.
-- `pg_snapshot_xmin` answers that for every transaction of the cluster: a projection worker's
-- batch, a long report in another database or another deployment's append all held every
-- namespace's feed back, and the read models' own writes delayed the events they wait for.
--
-- Every transaction that inserts events takes ROW EXCLUSIVE on this namespace's `events` table
-- when its INSERT starts, before that INSERT gives it a transaction id (the store refuses to
-- append in a transaction that already has one, see `append_many_in`), and keeps the lock
-- until after its commit is visible. So, for the statement snapshot `s` of a feed read, a
-- transaction that was running at `s` and writes events either still holds the lock when this
-- function looks, or has finished by then. The horizon is the oldest transaction of `s` that
-- holds the lock or is no longer running, and at most `s`'s xmax (transactions given an id
-- after `s` have larger ones). The lock holders are read before the transaction statuses, so a
-- writer that commits in between is caught by the second look.
CREATE FUNCTION feed_horizon(p_snapshot pg_snapshot)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_writers xid[];
BEGIN
    SELECT coalesce(array_agg(t.transactionid), '{}')
      INTO v_writers
      FROM pg_locks AS l
      JOIN pg_locks AS t
        ON t.virtualtransaction = l.virtualtransaction
       AND t.locktype = 'transactionid' AND t.mode = 'ExclusiveLock' AND t.granted
     WHERE l.locktype = 'relation'
       AND l.database = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database())
       AND l.relation = 'events'::regclass
       AND l.mode = 'RowExclusiveLock';
    RETURN least(
        pg_snapshot_xmax(p_snapshot)::text::bigint,
        (SELECT min(x::text::bigint)
           FROM pg_snapshot_xip(p_snapshot) AS x
          WHERE xid(x) = ANY (v_writers)
             OR pg_xact_status(x) IS DISTINCT FROM 'in progress'));
END
$fn$;
