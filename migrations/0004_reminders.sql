-- Scheduled reminders. The body is sealed by the client at creation for its target and sent
-- as-is (as a message from the creator, subtype `reminder`) each time the reminder fires.

CREATE TABLE reminders (
    mesh_id        uuid NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    id             uuid NOT NULL,
    number         bigint NOT NULL,
    creator_member uuid NOT NULL,
    creator_session uuid NOT NULL,
    creator_name   text NOT NULL,
    creator_session_pubkey bytea NOT NULL,
    creator_member_pubkey  bytea NOT NULL,
    label          text,
    target_kind    smallint NOT NULL,
    target_id      uuid,
    target_group   text,
    priority       smallint NOT NULL,
    sealing        smallint NOT NULL,
    nonce          bytea NOT NULL,
    ciphertext     bytea NOT NULL,
    -- One-shot when cron is NULL.
    cron           text,
    tz             text,
    -- NULL once a one-shot has fired or the reminder was cancelled.
    next_fire_at   timestamptz,
    fire_count     bigint NOT NULL DEFAULT 0,
    last_fired_at  timestamptz,
    -- The node whose actor runs it; valid while that node's liveness lease is.
    owner_node     text,
    cancelled_at   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mesh_id, id),
    UNIQUE (mesh_id, number)
);
CREATE INDEX reminders_due ON reminders (next_fire_at) WHERE next_fire_at IS NOT NULL;
CREATE INDEX reminders_id ON reminders (id);
