-- Bulk rebuilds (see docs/adr/0008-bulk-rebuild.md).
--
-- A rebuild fills a shadow generation nobody reads until the switch. Maintaining its indexes
-- row by row costs more than building them once at the end, so the rebuild strips them first
-- (`rm_defer_indexes`, which remembers their definitions here) and recreates them before it
-- catches up with live writes and switches. Primary keys stay, because
-- the projections' upserts name them, unless the caller lists the table as append-only.
--
-- Revisions also stop carrying a copy of the record's whole cells after every version: nothing
-- reads it (history and time travel fold the event log, the source of truth), and it was most
-- of a rebuild's writes. A revision keeps what changed (`changed_fields`, `changes`). Their
-- unique index on `event_id` goes too: the primary key (record_id, version) names the event.

CREATE TABLE rm_deferred_indexes (
    projection text    NOT NULL,
    generation integer NOT NULL,
    ord        integer NOT NULL,
    ddl        text    NOT NULL,
    PRIMARY KEY (projection, generation, ord)
);

-- The generation tables as 0010 made them, then without `record_revisions.cells`. Dropping a
-- column of a table just created (and empty) only edits the catalog.
ALTER FUNCTION rm_create_generation(text, text, integer) RENAME TO rm_create_generation_0010;

CREATE FUNCTION rm_create_generation(p_schema text, p_projection text, p_generation integer)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
BEGIN
    PERFORM rm_create_generation_0010(p_schema, p_projection, p_generation);
    IF p_projection = 'records' THEN
        EXECUTE format('ALTER TABLE %I.%I DROP COLUMN cells',
                       p_schema, 'record_revisions_g' || p_generation);
        -- (record_id, version), the primary key, already names one event: a second unique
        -- index on event_id only cost every insert and every rebuild.
        EXECUTE format('ALTER TABLE %I.%I DROP CONSTRAINT %I',
                       p_schema, 'record_revisions_g' || p_generation,
                       'record_revisions_g' || p_generation || '_event_id_key');
    END IF;
    DELETE FROM rm_deferred_indexes
     WHERE projection = p_projection AND generation = p_generation;
END
$fn$;

-- A generation's tables may now differ in columns from the one the views show, which
-- CREATE OR REPLACE VIEW refuses; the views are dropped and made again in the caller's
-- transaction, so readers still see the old generation or the new one, never neither.
CREATE OR REPLACE FUNCTION rm_publish(p_schema text, p_projection text, p_generation integer)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY rm_tables(p_projection) LOOP
        EXECUTE format('DROP VIEW IF EXISTS %I.%I', p_schema, v_table);
        EXECUTE format('CREATE VIEW %I.%I AS SELECT * FROM %I.%I',
                       p_schema, v_table, p_schema, v_table || '_g' || p_generation);
    END LOOP;
END
$fn$;

-- Drops the indexes and unique constraints of a generation's tables, remembering how to make
-- them again (the rebuild runs the saved statements, several at a time, then deletes them).
-- Primary keys stay, except on the tables listed in `p_drop_primary`. Returns how many were
-- dropped.
CREATE FUNCTION rm_defer_indexes(p_schema text, p_projection text, p_generation integer,
                                 p_drop_primary text[])
RETURNS integer
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_table text;
    v_rel   regclass;
    v_ord   integer := 0;
    c       record;
BEGIN
    DELETE FROM rm_deferred_indexes
     WHERE projection = p_projection AND generation = p_generation;
    FOREACH v_table IN ARRAY rm_tables(p_projection) LOOP
        v_rel := format('%I.%I', p_schema, v_table || '_g' || p_generation)::regclass;
        FOR c IN
            SELECT con.conname, pg_get_constraintdef(con.oid) AS def
              FROM pg_constraint con
             WHERE con.conrelid = v_rel
               AND (con.contype = 'u' OR (con.contype = 'p' AND v_table = ANY (p_drop_primary)))
             ORDER BY con.conname
        LOOP
            v_ord := v_ord + 1;
            INSERT INTO rm_deferred_indexes VALUES (p_projection, p_generation, v_ord,
                format('ALTER TABLE %s ADD CONSTRAINT %I %s', v_rel, c.conname, c.def));
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', v_rel, c.conname);
        END LOOP;
        FOR c IN
            SELECT i.indexrelid::regclass AS idx, pg_get_indexdef(i.indexrelid) AS def
              FROM pg_index i
             WHERE i.indrelid = v_rel
               AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid)
             ORDER BY 1
        LOOP
            v_ord := v_ord + 1;
            INSERT INTO rm_deferred_indexes VALUES (p_projection, p_generation, v_ord, c.def);
            EXECUTE format('DROP INDEX %s', c.idx);
        END LOOP;
    END LOOP;
    RETURN v_ord;
END
$fn$;
