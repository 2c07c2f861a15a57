-- Meshes, members, invites, sessions, the event log and per-recipient receipts.

CREATE TABLE meshes (
    id              uuid PRIMARY KEY,
    name            text NOT NULL,
    owner_member_id uuid NOT NULL,
    -- Highest sequence handed out; bumped under this row's lock inside the writing
    -- transaction, so commit order equals sequence order.
    head_seq        bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE members (
    mesh_id      uuid NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    pubkey       bytea NOT NULL,
    display_name text NOT NULL,
    role         smallint NOT NULL,
    -- Sequence of the log when the member joined: its first session replays from here.
    joined_seq   bigint NOT NULL DEFAULT 0,
    claim_pubkey bytea,
    sealed_mesh_key bytea,
    invited_with text,
    joined_at    timestamptz NOT NULL DEFAULT now(),
    removed_at   timestamptz,
    PRIMARY KEY (mesh_id, id)
);
CREATE UNIQUE INDEX members_pubkey ON members (mesh_id, pubkey);

CREATE TABLE invites (
    mesh_id     uuid NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    code        text NOT NULL,
    role        smallint NOT NULL,
    max_uses    integer NOT NULL,
    uses        integer NOT NULL DEFAULT 0,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    issued_by   uuid NOT NULL,
    signature   bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (code)
);
CREATE INDEX invites_mesh ON invites (mesh_id, created_at DESC);

CREATE TABLE sessions (
    mesh_id      uuid NOT NULL,
    id           uuid NOT NULL,
    member_id    uuid NOT NULL,
    pubkey       bytea NOT NULL,
    display_name text NOT NULL,
    groups       text[] NOT NULL DEFAULT '{}',
    visible      boolean NOT NULL DEFAULT true,
    -- Every message addressed to the session with seq <= watermark is acknowledged.
    watermark    bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mesh_id, id),
    FOREIGN KEY (mesh_id, member_id) REFERENCES members(mesh_id, id) ON DELETE CASCADE
);
CREATE INDEX sessions_member ON sessions (mesh_id, member_id);

-- The durable, ordered event log of each mesh. Bodies are ciphertext.
CREATE TABLE events (
    mesh_id        uuid NOT NULL,
    seq            bigint NOT NULL,
    id             uuid NOT NULL,
    kind           smallint NOT NULL,
    priority       smallint NOT NULL,
    target_kind    smallint NOT NULL,
    target_id      uuid,
    target_group   text,
    reply_to       uuid,
    subtype        text,
    sender_member  uuid NOT NULL,
    sender_session uuid NOT NULL,
    sender_name    text NOT NULL,
    sender_pubkey  bytea NOT NULL,
    sender_member_pubkey bytea NOT NULL,
    sealing        smallint NOT NULL,
    nonce          bytea NOT NULL,
    ciphertext     bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mesh_id, seq)
);
CREATE UNIQUE INDEX events_id ON events (mesh_id, id);
CREATE INDEX events_direct ON events (mesh_id, target_id, seq) WHERE target_id IS NOT NULL;
CREATE INDEX events_created ON events (created_at);

-- Per-recipient delivery state, written only when something happens to a delivery
-- (pushed, acked, read); "queued" is the absence of a row.
CREATE TABLE receipts (
    mesh_id    uuid NOT NULL,
    session_id uuid NOT NULL,
    seq        bigint NOT NULL,
    state      smallint NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mesh_id, session_id, seq)
);
CREATE INDEX receipts_seq ON receipts (mesh_id, seq);

-- Hello nonces seen recently (replay protection, shared by every node).
CREATE TABLE hello_nonces (
    nonce   bytea PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hello_nonces_seen ON hello_nonces (seen_at);
