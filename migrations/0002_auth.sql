-- Tables owned by the application layer (pyairtable-commands): idempotency keys, the email
-- reservations that keep emails unique, the authentication read tables built from user and
-- API-token events, and refresh-token families.
--
-- Like the event store, every object is created unqualified so it lands in the namespace's
-- schema (the store migrates with `search_path = <namespace>, public`).
-- auth_users and auth_tokens are projections: `rebuild_auth_tables` recreates them from the
-- event store. email_reservations, refresh_tokens and idempotency_keys are not derived from
-- events and are never rebuilt.

-- One row per (caller, key): the first result of a command sent with an Idempotency-Key.
CREATE TABLE idempotency_keys (
    actor        text        NOT NULL,
    key          text        NOT NULL CHECK (octet_length(key) BETWEEN 1 AND 255),
    command_hash text        NOT NULL,
    result       jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor, key)
);

-- Lets an operator expire old keys cheaply.
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);

-- Claimed before UserRegistered (or an email change) is appended, so two concurrent sign-ups
-- with one email cannot both succeed: the primary key decides.
CREATE TABLE email_reservations (
    email       text        PRIMARY KEY,
    user_id     text        NOT NULL,
    reserved_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX email_reservations_user_idx ON email_reservations (user_id);

-- Login lookups: the latest state of each user stream.
CREATE TABLE auth_users (
    user_id        text    PRIMARY KEY,
    email          text    NOT NULL UNIQUE,
    display_name   text    NOT NULL,
    password_hash  text    NOT NULL,
    is_admin       boolean NOT NULL,
    active         boolean NOT NULL,
    -- Version of the user stream this row reflects; older updates are ignored.
    stream_version bigint  NOT NULL CHECK (stream_version > 0)
);

-- API-token verification: the latest state of each token stream.
CREATE TABLE auth_tokens (
    token_id       text        PRIMARY KEY,
    user_id        text        NOT NULL,
    name           text        NOT NULL,
    secret_hash    text        NOT NULL CHECK (secret_hash ~ '^[0-9a-f]{64}$'),
    scopes         text[]      NOT NULL,
    -- NULL: valid for every base the owner can reach.
    base_ids       text[],
    revoked        boolean     NOT NULL,
    created_at     timestamptz NOT NULL,
    stream_version bigint      NOT NULL CHECK (stream_version > 0)
);

CREATE INDEX auth_tokens_user_idx ON auth_tokens (user_id);

-- Rotating refresh tokens. Each login starts a family; each refresh spends one token and
-- issues its child. Presenting a spent token again revokes the whole family.
CREATE TABLE refresh_tokens (
    id         uuid        PRIMARY KEY,
    family_id  uuid        NOT NULL,
    parent_id  uuid        REFERENCES refresh_tokens (id),
    user_id    text        NOT NULL,
    -- sha256 of the token as handed out; the token itself is never stored.
    token_hash text        NOT NULL UNIQUE,
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);

CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);
