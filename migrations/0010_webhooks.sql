-- Webhooks in (issue 16): registered hooks with their HMAC secret, target and priority, and
-- the signatures already accepted (each is accepted once within the replay window).
CREATE TABLE webhooks (
    mesh_id    uuid NOT NULL,
    id         uuid NOT NULL,
    name       text NOT NULL,
    secret     bytea NOT NULL,
    target     text NOT NULL,
    priority   text NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mesh_id, id)
);

CREATE TABLE webhook_seen (
    mesh_id   uuid NOT NULL,
    hook_id   uuid NOT NULL,
    signature bytea NOT NULL,
    seen_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mesh_id, hook_id, signature)
);
CREATE INDEX webhook_seen_at ON webhook_seen (seen_at);
