-- The audit log (issue 16): one hash chain per mesh of every admin and trust action, written
-- in the same transaction as the change. audit_heads holds each chain's head (locked by every
-- writer, so writers on all nodes extend one chain) and the checkpoint retention leaves.
CREATE TABLE audit_heads (
    mesh_id         uuid PRIMARY KEY,
    seq             bigint NOT NULL,
    hash            bytea NOT NULL,
    checkpoint_seq  bigint NOT NULL DEFAULT 0,
    checkpoint_hash bytea NOT NULL
);

CREATE TABLE audit_log (
    mesh_id      uuid NOT NULL,
    seq          bigint NOT NULL,
    at_ms        bigint NOT NULL,
    actor_member uuid,
    actor_name   text NOT NULL,
    action       text NOT NULL,
    subject      text NOT NULL,
    detail       text NOT NULL,
    hash         bytea NOT NULL,
    PRIMARY KEY (mesh_id, seq)
);
CREATE INDEX audit_log_actor ON audit_log (mesh_id, actor_member, seq);
