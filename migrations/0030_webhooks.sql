-- Webhooks in Airtable's shape (see docs/webhooks.md and docs/adr/0007-webhooks.md).
--
-- Webhooks are configuration, not domain aggregates: they live in these tables of the
-- namespace's schema, and every change to them is logged (target `pyairtable::webhooks`).
-- Their payloads are derived from the event log by the delivery worker, which keeps one feed
-- position per webhook and advances it with a compare-and-set in the same transaction as the
-- payloads it adds, so a payload number always names the same change.

CREATE TABLE webhooks (
    -- `ach` + 14 characters.
    id                     text        PRIMARY KEY,
    base_id                text        NOT NULL,
    -- The base's workspace when the webhook was created (for audit and clean-up).
    workspace_id           text        NOT NULL,
    created_by             text        NOT NULL,
    notification_url       text,
    -- The specification as the client sent it (validated), echoed by the list endpoint.
    specification          jsonb       NOT NULL,
    -- The HMAC key pings are signed with. It must be usable to sign, so it cannot be kept only
    -- as a hash; it is shown to the client once, at creation.
    mac_secret             bytea       NOT NULL CHECK (octet_length(mac_secret) >= 32),
    -- Feed position token up to which the event log has been turned into payloads.
    position               text        NOT NULL,
    -- Payloads recorded so far; the next one gets number payload_count + 1.
    payload_count          bigint      NOT NULL DEFAULT 0 CHECK (payload_count >= 0),
    -- Payloads covered by the last successful ping.
    notified_count         bigint      NOT NULL DEFAULT 0 CHECK (notified_count >= 0),
    notifications_enabled  boolean     NOT NULL DEFAULT true,
    expires_at             timestamptz NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT now(),
    -- When the next ping is due (NULL: none pending); also the lease of a ping in flight.
    ping_due_at            timestamptz,
    -- Failed attempts of the pending ping so far (0 for the first attempt).
    ping_retry             integer     NOT NULL DEFAULT 0 CHECK (ping_retry >= 0),
    last_success_at        timestamptz,
    -- Airtable's `lastNotificationResult`.
    last_result            jsonb
);

CREATE INDEX webhooks_base_idx ON webhooks (base_id);
CREATE INDEX webhooks_ping_due_idx ON webhooks (ping_due_at) WHERE ping_due_at IS NOT NULL;

-- The payloads of each webhook, numbered from 1 (the `cursor` of the payloads endpoint).
CREATE TABLE webhook_payloads (
    webhook_id  text        NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    number      bigint      NOT NULL CHECK (number > 0),
    -- Position token of the last event the payload covers.
    position    text        NOT NULL,
    payload     jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (webhook_id, number)
);

CREATE INDEX webhook_payloads_created_idx ON webhook_payloads (created_at);

-- Every notification attempt, successful or not (the list endpoint shows the latest one).
CREATE TABLE webhook_notifications (
    id              bigserial        PRIMARY KEY,
    webhook_id      text             NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    retry_number    integer          NOT NULL,
    success         boolean          NOT NULL,
    error           text,
    status_code     integer,
    duration_ms     double precision NOT NULL,
    will_be_retried boolean          NOT NULL,
    completed_at    timestamptz      NOT NULL DEFAULT now()
);

CREATE INDEX webhook_notifications_webhook_idx ON webhook_notifications (webhook_id, id);
