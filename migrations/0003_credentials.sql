-- Credentials are not events. Password hashes used to travel in UserRegistered and
-- UserPasswordChanged events, and from there to the message bus, the audit log and every
-- other consumer, where they could never be erased. They now live only in
-- auth_users.password_hash, written in the same transaction as those (credential-free) events.
--
-- That column is therefore no longer part of the projection: rebuild_auth_tables keeps the
-- hashes it finds, and a row it recreates from events has none. NULL means "no password set":
-- the user cannot sign in until an administrator resets the password.
ALTER TABLE auth_users ALTER COLUMN password_hash DROP NOT NULL;

-- Only PHC strings ("$algorithm$...") belong here, never a clear password stored by mistake.
ALTER TABLE auth_users
    ADD CONSTRAINT auth_users_password_hash_phc
    CHECK (password_hash IS NULL OR password_hash ~ '^\$[a-z0-9-]+\$[[:graph:]]+$');

COMMENT ON COLUMN auth_users.password_hash IS
    'Argon2id PHC string; the credential store, never derived from events and kept by rebuilds. NULL: no password set.';
