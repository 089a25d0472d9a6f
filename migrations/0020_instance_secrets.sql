-- Secrets of this deployment that every node must share (e.g. the HS256 key that signs access
-- tokens) when the operator does not provide them through the environment. Generated once, on
-- first start, by whichever node gets there first.
CREATE TABLE instance_secrets (
    name       text        PRIMARY KEY,
    value      bytea       NOT NULL CHECK (octet_length(value) >= 32),
    created_at timestamptz NOT NULL DEFAULT now()
);
