-- The query side's bookkeeping (relay and projection checkpoints, parked events, read-model
-- generations) and the DDL of the read models themselves.
--
-- Bookkeeping tables are created unqualified: like the event store, they live in the
-- namespace's own schema (`search_path = <namespace>, public` while migrating), so the
-- read-model change and its checkpoint commit in one transaction of the same database.
--
-- The read models live apart from the events, in schema `<namespace>_rm`, as one set of
-- tables per *generation* (`records_g1`, `records_g2`, ...) behind views with the plain names
-- (`records`). A rebuild fills the next generation while the views still show the current one,
-- then `rm_publish` re-points the views in the same transaction that records the switch:
-- queries keep answering from the old copy until that commit. The DDL stays here, in the
-- migrations, as functions the runtime calls with the schema and generation to use.
-- See docs/adr/0005-relay-and-projections.md.

-- Where each relay has got to in the global feed: everything at or before `position` has been
-- acknowledged by JetStream.
CREATE TABLE relay_checkpoints (
    name       text        PRIMARY KEY,
    position   text        NOT NULL,
    published  bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Where each generation of each projection has got to. Written in the same transaction as the
-- read-model change for SQL projections; Redis projections keep theirs in Redis (atomic with
-- their changes) and mirror it here for status only.
CREATE TABLE projection_checkpoints (
    projection       text        NOT NULL,
    generation       integer     NOT NULL CHECK (generation > 0),
    position         text        NOT NULL,
    events           bigint      NOT NULL DEFAULT 0,
    last_recorded_at timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, generation)
);

-- The generation queries read, per projection. Workers take this row FOR SHARE at the start of
-- every batch and a rebuild takes it FOR UPDATE to switch, so no batch straddles a switch.
CREATE TABLE projection_generations (
    projection            text        PRIMARY KEY,
    generation            integer     NOT NULL CHECK (generation > 0),
    state                 text        NOT NULL DEFAULT 'running'
                                      CHECK (state IN ('running', 'halted', 'rebuilding')),
    rebuilding_generation integer,
    halted_reason         text,
    switched_at           timestamptz NOT NULL DEFAULT now()
);

-- Events a projection gave up on after retrying: surfaced in the status, replayed by
-- `pyairtable projections retry NAME`.
CREATE TABLE parked_events (
    id          bigserial   PRIMARY KEY,
    projection  text        NOT NULL,
    position    text        NOT NULL,
    event_id    uuid        NOT NULL,
    stream_id   text        NOT NULL,
    version     bigint      NOT NULL,
    event_type  text        NOT NULL,
    error       text        NOT NULL,
    attempts    integer     NOT NULL,
    -- The whole event as relayed, so `retry` needs neither the bus nor a feed scan.
    event       jsonb       NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    CONSTRAINT parked_events_projection_event_key UNIQUE (projection, event_id)
);

CREATE INDEX parked_events_open_idx ON parked_events (projection) WHERE resolved_at IS NULL;

-- The read-model tables each SQL projection owns.
CREATE FUNCTION rm_tables(p_projection text) RETURNS text[]
LANGUAGE sql IMMUTABLE
AS $fn$
    SELECT CASE p_projection
        WHEN 'audit_log' THEN ARRAY['audit_log']
        WHEN 'records' THEN ARRAY['records', 'record_revisions']
        WHEN 'directory' THEN ARRAY['users', 'workspaces', 'members', 'bases', 'tables',
                                    'fields', 'views', 'api_tokens']
        ELSE NULL
    END
$fn$;

-- Creates (empty) the tables of one generation of a projection in `p_schema`.
CREATE FUNCTION rm_create_generation(p_schema text, p_projection text, p_generation integer)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_table text;
    t       text;
BEGIN
    IF rm_tables(p_projection) IS NULL THEN
        RAISE EXCEPTION 'unknown SQL projection %', p_projection;
    END IF;
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', p_schema);
    FOREACH v_table IN ARRAY rm_tables(p_projection) LOOP
        t := v_table || '_g' || p_generation;
        EXECUTE format('DROP TABLE IF EXISTS %I.%I', p_schema, t);
        CASE v_table
        WHEN 'audit_log' THEN
            EXECUTE format($ddl$
                CREATE TABLE %1$I.%2$I (
                    event_id       uuid        PRIMARY KEY,
                    position       text        NOT NULL,
                    -- The position's parts, so the log can be listed in feed order.
                    feed_epoch     bigint      NOT NULL,
                    feed_xid       bigint      NOT NULL,
                    feed_pos       bigint      NOT NULL,
                    stream_id      text        NOT NULL,
                    version        bigint      NOT NULL,
                    aggregate_kind text        NOT NULL,
                    event_type     text        NOT NULL,
                    schema_version integer     NOT NULL,
                    actor          jsonb       NOT NULL,
                    actor_kind     text,
                    actor_id       text,
                    workspace_id   text,
                    correlation_id text,
                    causation_id   text,
                    recorded_at    timestamptz NOT NULL,
                    payload        jsonb       NOT NULL,
                    UNIQUE (stream_id, version)
                )$ddl$, p_schema, t);
            EXECUTE format('CREATE INDEX %I ON %I.%I (workspace_id, recorded_at)', t || '_ws', p_schema, t);
            EXECUTE format('CREATE INDEX %I ON %I.%I (actor_id, recorded_at)', t || '_actor', p_schema, t);
            EXECUTE format('CREATE INDEX %I ON %I.%I (correlation_id)', t || '_corr', p_schema, t);
            EXECUTE format('CREATE INDEX %I ON %I.%I (feed_epoch, feed_xid, feed_pos)', t || '_feed', p_schema, t);
        WHEN 'records' THEN
            EXECUTE format($ddl$
                CREATE TABLE %1$I.%2$I (
                    record_id    text        PRIMARY KEY,
                    stream_id    text        NOT NULL,
                    table_id     text,
                    base_id      text,
                    workspace_id text,
                    cells        jsonb       NOT NULL DEFAULT '{}',
                    version      bigint      NOT NULL,
                    deleted      boolean     NOT NULL DEFAULT false,
                    created_at   timestamptz NOT NULL,
                    created_by   jsonb,
                    updated_at   timestamptz NOT NULL,
                    updated_by   jsonb,
                    position     text        NOT NULL
                )$ddl$, p_schema, t);
            -- jsonb_path_ops answers `cells @> '{"fld...": value}'` for any field without an
            -- index per field.
            EXECUTE format('CREATE INDEX %I ON %I.%I USING gin (cells jsonb_path_ops)', t || '_cells', p_schema, t);
            EXECUTE format('CREATE INDEX %I ON %I.%I (table_id, created_at, record_id) WHERE NOT deleted', t || '_table', p_schema, t);
            EXECUTE format('CREATE INDEX %I ON %I.%I (workspace_id)', t || '_ws', p_schema, t);
        WHEN 'record_revisions' THEN
            EXECUTE format($ddl$
                CREATE TABLE %1$I.%2$I (
                    record_id      text        NOT NULL,
                    version        bigint      NOT NULL,
                    event_id       uuid        NOT NULL UNIQUE,
                    event_type     text        NOT NULL,
                    table_id       text,
                    workspace_id   text,
                    actor          jsonb       NOT NULL,
                    recorded_at    timestamptz NOT NULL,
                    changed_fields text[]      NOT NULL,
                    changes        jsonb       NOT NULL,
                    cells          jsonb,
                    position       text        NOT NULL,
                    PRIMARY KEY (record_id, version)
                )$ddl$, p_schema, t);
            EXECUTE format('CREATE INDEX %I ON %I.%I (table_id, recorded_at)', t || '_table', p_schema, t);
        WHEN 'users' THEN
            EXECUTE format($ddl$
                CREATE TABLE %1$I.%2$I (
                    user_id      text        PRIMARY KEY,
                    email        text        NOT NULL,
                    display_name text        NOT NULL,
                    is_admin     boolean     NOT NULL DEFAULT false,
                    active       boolean     NOT NULL DEFAULT true,
                    created_at   timestamptz NOT NULL,
                    updated_at   timestamptz NOT NULL,
                    version      bigint      NOT NULL,
                    position     text        NOT NULL
                )$ddl$, p_schema, t);
            EXECUTE format('CREATE INDEX %I ON %I.%I (lower(email))', t || '_email', p_schema, t);
        WHEN 'workspaces' THEN
            EXECUTE format($ddl$
                CREATE TABLE %1$I.%2$I (
                    workspace_id text        PRIMARY KEY,
                    name         text        NOT NULL,
                    archived     boolean     NOT NULL DEFAULT false,
                    created_at   timestamptz NOT NULL,
                    updated_at   timestamptz NOT NULL,
                    version      bigint      NOT NULL,
                    position     text        NOT NULL
                )$ddl$, p_schema, t);
        WHEN 'members' THEN
            EXECUTE format($ddl$
                CREATE TABLE %1$I.%2$I (
                    workspace_id text        NOT NULL,
                    user_id      text        NOT NULL,
                    role         text        NOT NULL,
                    joined_at    timestamptz NOT NULL,
                    position     text        NOT NULL,
                    PRIMARY KEY (workspace_id, user_id)
                )$ddl$, p_schema, t);
            EXECUTE format('CREATE INDEX %I ON %I.%I (user_id)', t || '_user', p_schema, t);
        WHEN 'bases' THEN
            EXECUTE format($ddl$
                CREATE TABLE %1$I.%2$I (
                    base_id      text        PRIMARY KEY,
                    workspace_id text,
                    name         text        NOT NULL,
                    deleted      boolean     NOT NULL DEFAULT false,
                    created_at   timestamptz NOT NULL,
                    updated_at   timestamptz NOT NULL,
                    version      bigint      NOT NULL,
                    position     text        NOT NULL
                )$ddl$, p_schema, t);
            EXECUTE format('CREATE INDEX %I ON %I.%I (workspace_id)', t || '_ws', p_schema, t);
        WHEN 'tables' THEN
            EXECUTE format($ddl$
                CREATE TABLE %1$I.%2$I (
                    table_id     text        PRIMARY KEY,
                    base_id      text        NOT NULL,
                    workspace_id text,
                    name         text        NOT NULL,
                    description  text,
                    primary_field_id text,
                    sort_order   integer     NOT NULL DEFAULT 0,
                    deleted      boolean     NOT NULL DEFAULT false,
                    updated_at   timestamptz NOT NULL,
                    position     text        NOT NULL
                )$ddl$, p_schema, t);
            EXECUTE format('CREATE INDEX %I ON %I.%I (base_id)', t || '_base', p_schema, t);
        WHEN 'fields' THEN
            EXECUTE format($ddl$
                CREATE TABLE %1$I.%2$I (
                    field_id     text        PRIMARY KEY,
                    table_id     text        NOT NULL,
                    base_id      text        NOT NULL,
                    name         text        NOT NULL,
                    field_type   text        NOT NULL,
                    options      jsonb       NOT NULL DEFAULT '{}',
                    description  text,
                    sort_order   integer     NOT NULL DEFAULT 0,
                    deleted      boolean     NOT NULL DEFAULT false,
                    updated_at   timestamptz NOT NULL,
                    position     text        NOT NULL
                )$ddl$, p_schema, t);
            EXECUTE format('CREATE INDEX %I ON %I.%I (table_id)', t || '_table', p_schema, t);
        WHEN 'views' THEN
            EXECUTE format($ddl$
                CREATE TABLE %1$I.%2$I (
                    view_id      text        PRIMARY KEY,
                    table_id     text        NOT NULL,
                    base_id      text        NOT NULL,
                    name         text        NOT NULL,
                    view_type    text        NOT NULL,
                    config       jsonb       NOT NULL DEFAULT '{}',
                    deleted      boolean     NOT NULL DEFAULT false,
                    updated_at   timestamptz NOT NULL,
                    position     text        NOT NULL
                )$ddl$, p_schema, t);
            EXECUTE format('CREATE INDEX %I ON %I.%I (table_id)', t || '_table', p_schema, t);
        WHEN 'api_tokens' THEN
            -- Only the hash of a token's secret ever reaches the events, and so this table.
            EXECUTE format($ddl$
                CREATE TABLE %1$I.%2$I (
                    token_id     text        PRIMARY KEY,
                    owner_id     text        NOT NULL,
                    name         text        NOT NULL,
                    scopes       jsonb       NOT NULL,
                    base_ids     jsonb,
                    secret_hash  text        NOT NULL,
                    revoked      boolean     NOT NULL DEFAULT false,
                    created_at   timestamptz NOT NULL,
                    revoked_at   timestamptz,
                    position     text        NOT NULL
                )$ddl$, p_schema, t);
            EXECUTE format('CREATE INDEX %I ON %I.%I (owner_id)', t || '_owner', p_schema, t);
            EXECUTE format('CREATE UNIQUE INDEX %I ON %I.%I (secret_hash)', t || '_hash', p_schema, t);
        END CASE;
    END LOOP;
END
$fn$;

-- Points the plain-named views of a projection at one generation. Called inside the switching
-- transaction; CREATE OR REPLACE VIEW keeps grants and waits for running queries instead of
-- failing them.
CREATE FUNCTION rm_publish(p_schema text, p_projection text, p_generation integer)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY rm_tables(p_projection) LOOP
        EXECUTE format('CREATE OR REPLACE VIEW %I.%I AS SELECT * FROM %I.%I',
                       p_schema, v_table, p_schema, v_table || '_g' || p_generation);
    END LOOP;
END
$fn$;

-- Drops the tables of a generation nobody reads any more.
CREATE FUNCTION rm_drop_generation(p_schema text, p_projection text, p_generation integer)
RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_table text;
BEGIN
    FOREACH v_table IN ARRAY rm_tables(p_projection) LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I.%I', p_schema, v_table || '_g' || p_generation);
    END LOOP;
END
$fn$;
