-- Per-peer controls (issue 16): whom a member blocks or mutes, and which event kinds are
-- pushed to it (NULL: all).
CREATE TABLE member_controls (
    mesh_id   uuid NOT NULL,
    member_id uuid NOT NULL,
    peer      uuid NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('block', 'mute')),
    PRIMARY KEY (mesh_id, member_id, peer, kind)
);

CREATE TABLE member_subscriptions (
    mesh_id   uuid NOT NULL,
    member_id uuid NOT NULL,
    kinds     text[],
    PRIMARY KEY (mesh_id, member_id)
);
