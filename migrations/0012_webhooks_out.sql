-- Webhooks out (issue 16): URLs subscribed to kinds of coordination events, each delivered in
-- order by exactly one node at a time (the lease holder), at least once, with the event id as
-- the idempotency key; every attempt is logged.
CREATE TABLE webhook_subscriptions (
    mesh_id     uuid NOT NULL,
    id          uuid NOT NULL,
    url         text NOT NULL,
    secret      bytea NOT NULL,
    kinds       text[] NOT NULL,
    created_by  uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    cursor_seq  bigint NOT NULL,
    lease_node  text,
    lease_until timestamptz,
    failures    integer NOT NULL DEFAULT 0,
    disabled_at timestamptz,
    PRIMARY KEY (mesh_id, id)
);

CREATE TABLE webhook_attempts (
    mesh_id uuid NOT NULL,
    hook_id uuid NOT NULL,
    seq     bigint NOT NULL,
    attempt integer NOT NULL,
    node    text NOT NULL,
    status  integer,
    error   text,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_hook ON webhook_attempts (mesh_id, hook_id, at);
