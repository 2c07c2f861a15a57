-- Session rooms (issue 14): each agent session's activity stream, who watches it, who drives
-- it, whom a member lets drive, permission requests and their decisions, and mesh settings.

-- One row per entry; bodies are sealed with the mesh key by the publishing session.
CREATE TABLE stream_entries (
    mesh_id    uuid NOT NULL,
    session_id uuid NOT NULL,
    seq        bigint NOT NULL,
    kind       text NOT NULL,
    at_ms      bigint NOT NULL,
    nonce      bytea NOT NULL,
    ciphertext bytea NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mesh_id, session_id, seq)
);
CREATE INDEX stream_entries_stored ON stream_entries (stored_at);

-- Per stream: its member, head, size, and what was pruned to keep it bounded.
CREATE TABLE streams (
    mesh_id      uuid NOT NULL,
    session_id   uuid NOT NULL,
    member_id    uuid NOT NULL,
    head         bigint NOT NULL DEFAULT 0,
    bytes        bigint NOT NULL DEFAULT 0,
    pruned_below bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (mesh_id, session_id)
);

-- Who watches which room, from which connection of which node.
CREATE TABLE room_viewers (
    mesh_id      uuid NOT NULL,
    session_id   uuid NOT NULL,
    viewer       text NOT NULL,
    node         text NOT NULL,
    member_id    uuid NOT NULL,
    name         text NOT NULL,
    typing_until timestamptz,
    since        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mesh_id, session_id, viewer)
);
CREATE INDEX room_viewers_node ON room_viewers (node);

-- The wheel of a session: an exclusive hold with a fencing token from mesh_counters, kept
-- while its holder's session is present and for a grace after.
CREATE TABLE wheels (
    mesh_id        uuid NOT NULL,
    session_id     uuid NOT NULL,
    holder_member  uuid NOT NULL,
    holder_session uuid NOT NULL,
    holder_name    text NOT NULL,
    token          bigint NOT NULL,
    since          timestamptz NOT NULL DEFAULT now(),
    orphaned_at    timestamptz,
    requested_by   text,
    PRIMARY KEY (mesh_id, session_id)
);

-- Members a member lets drive its sessions and answer their permission requests.
CREATE TABLE drive_grants (
    mesh_id   uuid NOT NULL,
    member_id uuid NOT NULL,
    grantee   uuid NOT NULL,
    PRIMARY KEY (mesh_id, member_id, grantee)
);

CREATE TABLE approvals (
    mesh_id           uuid NOT NULL,
    id                uuid NOT NULL,
    session_id        uuid NOT NULL,
    member_id         uuid NOT NULL,
    requested_at      timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    nonce             bytea NOT NULL,
    ciphertext        bytea NOT NULL,
    allowed           boolean,
    decided_by        uuid,
    decided_by_name   text,
    reason_nonce      bytea,
    reason_ciphertext bytea,
    decided_at        timestamptz,
    PRIMARY KEY (mesh_id, id)
);
CREATE INDEX approvals_pending ON approvals (mesh_id, session_id) WHERE allowed IS NULL;

CREATE TABLE mesh_settings (
    mesh_id uuid NOT NULL,
    key     text NOT NULL,
    value   text NOT NULL,
    PRIMARY KEY (mesh_id, key)
);
