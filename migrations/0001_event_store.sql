-- The event store: the write side of PyAirtable and the outbox for the relay.
--
-- Every object here is created unqualified on purpose: the store runs its migrations with
-- `search_path = <namespace>, public`, so each deployment (and each parallel test) gets its
-- own copy inside the schema named after its namespace.
--
-- See docs/adr/0002-gap-free-global-feed.md for why the feed key is (epoch, xid, pos). Appends
-- are one SQL statement built by the store (eventstore/src/append.rs).

-- The epoch is the first part of every feed position. It is bumped when the cluster under
-- the data changes (a logical restore into another cluster restarts transaction ids), so
-- positions written after such a restore still sort after every position written before it.
CREATE TABLE store_epoch (
    singleton         boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    epoch             bigint      NOT NULL CHECK (epoch > 0),
    system_identifier bigint      NOT NULL,
    changed_at        timestamptz NOT NULL DEFAULT now()
);

INSERT INTO store_epoch (epoch, system_identifier)
SELECT 1, system_identifier FROM pg_control_system();

CREATE SEQUENCE events_pos_seq AS bigint;

-- No CHECK constraints on purpose: Postgres rebuilds them for every INSERT statement, which
-- measured about 80 µs of a 280 µs append. The append statement (eventstore/src/append.rs)
-- guarantees versions and hash lengths, and verification checks them.
CREATE TABLE events (
    epoch          bigint      NOT NULL,
    -- pg_current_xact_id() of the writing transaction, stored as bigint (an xid8 is an
    -- unsigned 64-bit epoch-extended id that never approaches 2^63 in practice).
    xid            bigint      NOT NULL,
    pos            bigint      NOT NULL DEFAULT nextval('events_pos_seq'),
    version        bigint      NOT NULL,
    recorded_at    timestamptz NOT NULL,
    schema_version integer     NOT NULL,
    event_id       uuid        NOT NULL,
    stream_id      text        NOT NULL,
    event_type     text        NOT NULL,
    -- json (not jsonb) keeps the exact text that was hashed, so verification can recompute
    -- the hash from the stored bytes without depending on jsonb's normalisation.
    payload        json        NOT NULL,
    metadata       json        NOT NULL,
    prev_hash      bytea       NOT NULL,
    hash           bytea       NOT NULL,
    CONSTRAINT events_feed_pkey PRIMARY KEY (epoch, xid, pos),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);

ALTER SEQUENCE events_pos_seq OWNED BY events.pos;

CREATE TABLE snapshots (
    stream_id      text        PRIMARY KEY,
    version        bigint      NOT NULL,
    schema_version integer     NOT NULL,
    state          jsonb       NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT now()
);

-- Compares the stored cluster identity with the running cluster and bumps the epoch when they
-- differ, or when stored transaction ids of the current epoch are not behind the cluster's
-- next transaction id (ids went backwards: the data was restored somewhere else).
-- Called by the store on connect and after migrating; returns the epoch in force.
CREATE FUNCTION check_epoch() RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_system  bigint;
    v_row     store_epoch%ROWTYPE;
    v_max_xid bigint;
    v_next    bigint;
BEGIN
    SELECT c.system_identifier INTO v_system FROM pg_control_system() AS c;
    SELECT * INTO STRICT v_row FROM store_epoch FOR UPDATE;
    SELECT e.xid INTO v_max_xid FROM events AS e
     WHERE e.epoch = v_row.epoch ORDER BY e.epoch DESC, e.xid DESC LIMIT 1;
    v_next := pg_snapshot_xmax(pg_current_snapshot())::text::bigint;
    IF v_row.system_identifier <> v_system OR (v_max_xid IS NOT NULL AND v_max_xid >= v_next) THEN
        UPDATE store_epoch
           SET epoch = v_row.epoch + 1, system_identifier = v_system, changed_at = now()
         RETURNING epoch INTO v_row.epoch;
    END IF;
    RETURN v_row.epoch;
END
$fn$;

-- Returns the stored rows of an append that is being retried, or raises when the ids are
-- stored but not as that same append (PAD01) or only some of them are stored (PAD02).
-- Raises nothing and returns no rows when none of the ids is stored. The store calls it only
-- when an append conflicts or hits the event id index, never on the fast path.
CREATE FUNCTION replay_append(p_streams text[], p_counts integer[], p_event_ids uuid[])
RETURNS TABLE (out_event_id uuid, out_stream_id text, out_version bigint, out_epoch bigint,
               out_xid bigint, out_pos bigint, out_recorded_at timestamptz)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $fn$
DECLARE
    v_found   integer := 0;
    v_total   integer := cardinality(p_event_ids);
    v_missing uuid;
    v_first   bigint;
    v_row     record;
    w         integer := 1;
    k         integer := 0;
BEGIN
    FOR v_row IN
        SELECT u.id, u.ord, e.stream_id, e.version, e.epoch, e.xid, e.pos, e.recorded_at
          FROM unnest(p_event_ids) WITH ORDINALITY AS u(id, ord)
          LEFT JOIN events AS e ON e.event_id = u.id
         ORDER BY u.ord
    LOOP
        -- Walk the flat event list write by write.
        k := k + 1;
        WHILE k > p_counts[w] LOOP
            k := k - p_counts[w];
            w := w + 1;
        END LOOP;
        IF k = 1 THEN
            v_first := v_row.version;
        END IF;
        IF v_row.stream_id IS NULL THEN
            v_missing := coalesce(v_missing, v_row.id);
            CONTINUE;
        END IF;
        v_found := v_found + 1;
        -- An id stored in another stream, or out of place in this one, cannot be a retry of
        -- this append. (A missing first event makes the write partial: reported below.)
        IF v_row.stream_id <> p_streams[w]
           OR (v_first IS NOT NULL AND v_row.version <> v_first + k - 1) THEN
            RAISE EXCEPTION USING
                ERRCODE = 'PAD01',
                MESSAGE = format('event %s is already stored as version %s of stream %s',
                                 v_row.id, v_row.version, v_row.stream_id),
                DETAIL = json_build_object('event_id', v_row.id, 'stream_id', v_row.stream_id,
                                           'version', v_row.version)::text;
        END IF;
        out_event_id := v_row.id;
        out_stream_id := v_row.stream_id;
        out_version := v_row.version;
        out_epoch := v_row.epoch;
        out_xid := v_row.xid;
        out_pos := v_row.pos;
        out_recorded_at := v_row.recorded_at;
        RETURN NEXT;
    END LOOP;
    IF v_found > 0 AND v_found < v_total THEN
        RAISE EXCEPTION USING
            ERRCODE = 'PAD02',
            MESSAGE = format('%s of the %s events are already stored; %s is not', v_found, v_total, v_missing),
            DETAIL = json_build_object('stored', v_found, 'total', v_total, 'missing', v_missing)::text;
    END IF;
END
$fn$;
