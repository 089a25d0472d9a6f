-- Auto numbers (see docs/adr/0009-auto-numbers.md).
--
-- Every record gets a number per table, 1, 2, 3, ... in the order the projection applies the
-- records' creation events, which is feed order, so a rebuild hands out the same numbers. A
-- number is never handed out twice: deleted records keep their rows (and numbers), and each
-- generation of the `records` projection keeps, per table, the last number it gave
-- (`record_autonumbers_g<n>`). The counter lives in the generation, so a rebuild's shadow counts
-- from zero, and it is written in the same transaction as the rows and the checkpoint.
--
-- The records table gets `autonumber bigint NOT NULL` as its last column and a unique index on
-- (table_id, autonumber): a number given twice fails the write instead of reaching a reader.
-- Generations that exist already are upgraded below, numbered by the feed position of each
-- record's creation event, and the views are published again (a view's `*` is expanded when
-- the view is made, so the old `records` view would not show the new column).

-- Gives a generation's records table, which has the `autonumber` column already (filled, or
-- empty), the rest: NOT NULL, the unique index, and the counters, started at each table's
-- highest number. Shared by new generations and the upgrade below, so both end up alike.
CREATE FUNCTION rm_finish_autonumbers(p_schema text, p_generation integer)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_records  text := 'records_g' || p_generation;
    v_counters text := 'record_autonumbers_g' || p_generation;
BEGIN
    EXECUTE format('ALTER TABLE %I.%I ALTER COLUMN autonumber SET NOT NULL',
                   p_schema, v_records);
    EXECUTE format('CREATE UNIQUE INDEX %I ON %I.%I (table_id, autonumber)',
                   v_records || '_autonumber', p_schema, v_records);
    EXECUTE format('DROP TABLE IF EXISTS %I.%I', p_schema, v_counters);
    -- Its primary key is never deferred during a rebuild (`rm_defer_indexes` walks
    -- `rm_tables` only), because the counter upserts name it.
    EXECUTE format($ddl$
        CREATE TABLE %1$I.%2$I (
            table_id text   PRIMARY KEY,
            -- The last number handed out in the table.
            last     bigint NOT NULL CHECK (last > 0)
        )$ddl$, p_schema, v_counters);
    EXECUTE format($sql$
        INSERT INTO %1$I.%2$I (table_id, last)
        SELECT table_id, max(autonumber) FROM %1$I.%3$I
         WHERE table_id IS NOT NULL GROUP BY table_id$sql$,
        p_schema, v_counters, v_records);
END
$fn$;

-- The generation tables as 0040 made them, then the records' number and the counters.
-- On a table just created (and empty) these steps only edit the catalog.
ALTER FUNCTION rm_create_generation(text, text, integer) RENAME TO rm_create_generation_0040;

CREATE FUNCTION rm_create_generation(p_schema text, p_projection text, p_generation integer)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    PERFORM rm_create_generation_0040(p_schema, p_projection, p_generation);
    IF p_projection = 'records' THEN
        EXECUTE format('ALTER TABLE %I.%I ADD COLUMN autonumber bigint',
                       p_schema, 'records_g' || p_generation);
        PERFORM rm_finish_autonumbers(p_schema, p_generation);
    END IF;
END
$fn$;

-- Every table of a generation, behind a view of the same name: `rm_tables` (the tables the
-- 0010 DDL makes, which `rm_create_generation_0010` and `rm_defer_indexes` walk) plus the
-- tables later migrations add. NULL for an unknown projection, like `rm_tables`.
CREATE FUNCTION rm_generation_tables(p_projection text) RETURNS text[]
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT
AS $fn$
    SELECT CASE p_projection
        WHEN 'records' THEN rm_tables(p_projection) || ARRAY['record_autonumbers']
        ELSE rm_tables(p_projection)
    END
$fn$;

-- As in 0040, over every table of the generation.
CREATE OR REPLACE FUNCTION rm_publish(p_schema text, p_projection text, p_generation integer)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY rm_generation_tables(p_projection) LOOP
        EXECUTE format('DROP VIEW IF EXISTS %I.%I', p_schema, v_table);
        EXECUTE format('CREATE VIEW %I.%I AS SELECT * FROM %I.%I',
                       p_schema, v_table, p_schema, v_table || '_g' || p_generation);
    END LOOP;
END
$fn$;

-- As in 0010, over every table of the generation.
CREATE OR REPLACE FUNCTION rm_drop_generation(p_schema text, p_projection text, p_generation integer)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY rm_generation_tables(p_projection) LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I.%I', p_schema, v_table || '_g' || p_generation);
    END LOOP;
END
$fn$;

-- Upgrades the generations that exist: the published one, and a shadow a rebuild left (it is
-- dropped by the next rebuild, but must not be switched to without numbers meanwhile).
-- The read models live in `<namespace>_rm` (projections/src/names.rs, `Names::rm_schema`),
-- and migrations run with the namespace first on the search_path.
--
-- Each record is numbered by the feed position of its `RecordCreated` event, which is the
-- order the projection applied them in and a rebuild applies them in. The store keeps one
-- creation per record stream (the domain refuses a second); a row whose creation is not in
-- the store (none should be) comes after those that are, by creation time.
DO $upgrade$
DECLARE
    v_schema     text := current_schema() || '_rm';
    v_table      text;
    v_generation integer;
BEGIN
    FOR v_table IN
        SELECT c.relname
          FROM pg_class AS c
          JOIN pg_namespace AS n ON n.oid = c.relnamespace
         WHERE n.nspname = v_schema AND c.relkind = 'r' AND c.relname ~ '^records_g[0-9]+$'
         ORDER BY c.relname
    LOOP
        v_generation := substr(v_table, length('records_g') + 1)::integer;
        EXECUTE format('ALTER TABLE %I.%I ADD COLUMN autonumber bigint', v_schema, v_table);
        EXECUTE format($sql$
            UPDATE %1$I.%2$I AS r
               SET autonumber = o.n
              FROM (SELECT r2.record_id,
                           row_number() OVER (PARTITION BY r2.table_id
                                              ORDER BY c.epoch, c.xid, c.pos,
                                                       r2.created_at, r2.record_id) AS n
                      FROM %1$I.%2$I AS r2
                      LEFT JOIN LATERAL (
                           SELECT e.epoch, e.xid, e.pos
                             FROM events AS e
                            WHERE e.stream_id = r2.stream_id
                              AND e.event_type = 'RecordCreated'
                            ORDER BY e.version
                            LIMIT 1) AS c ON true) AS o
             WHERE o.record_id = r.record_id$sql$, v_schema, v_table);
        PERFORM rm_finish_autonumbers(v_schema, v_generation);
    END LOOP;

    SELECT g.generation INTO v_generation
      FROM projection_generations AS g WHERE g.projection = 'records';
    IF FOUND AND to_regclass(format('%I.%I', v_schema, 'records_g' || v_generation)) IS NOT NULL THEN
        PERFORM rm_publish(v_schema, 'records', v_generation);
    END IF;
END
$upgrade$;
