-- Locks on paths and globs. Every change to a mesh's locks runs in a transaction holding the
-- mesh's advisory lock (see broker/src/coord/locks.rs), so overlap checks see a stable table.

CREATE TABLE locks (
    mesh_id        uuid NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    -- Fencing token and id: from the mesh's `lock` counter, so strictly increasing.
    token          bigint NOT NULL,
    pattern        text NOT NULL,
    exclusive      boolean NOT NULL,
    member_id      uuid NOT NULL,
    session_id     uuid NOT NULL,
    holder_name    text NOT NULL,
    reason         text,
    acquired_at    timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    -- Set when the holding session's presence ended; the lock goes after a grace unless the
    -- session comes back.
    orphaned_at    timestamptz,
    PRIMARY KEY (mesh_id, token)
);
CREATE INDEX locks_session ON locks (mesh_id, session_id);
CREATE INDEX locks_expiry ON locks (expires_at);

CREATE TABLE lock_waiters (
    id             bigserial PRIMARY KEY,
    mesh_id        uuid NOT NULL REFERENCES meshes(id) ON DELETE CASCADE,
    pattern        text NOT NULL,
    exclusive      boolean NOT NULL,
    member_id      uuid NOT NULL,
    session_id     uuid NOT NULL,
    holder_name    text NOT NULL,
    reason         text,
    ttl_ms         bigint NOT NULL,
    queued_at      timestamptz NOT NULL DEFAULT now(),
    deadline       timestamptz NOT NULL,
    -- Set when the queue grants it; the waiting request picks the grant up.
    granted_token  bigint
);
CREATE INDEX lock_waiters_mesh ON lock_waiters (mesh_id, id);
