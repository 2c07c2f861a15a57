-- Correctness under faults (issue 10).

-- A queued lock acquire belongs to the node serving its request: when that node dies, its
-- waiters leave the queue. Waiters now take their grant themselves when they reach the front,
-- so no grant is ever made to a request that is no longer there (granted_token is gone).
ALTER TABLE lock_waiters ADD COLUMN node_id text NOT NULL DEFAULT '';
ALTER TABLE lock_waiters DROP COLUMN granted_token;
CREATE INDEX lock_waiters_node ON lock_waiters (node_id);

-- The owner's signed commitment to the current mesh key: a joiner checks the key it is
-- granted against it, so no member can hand it a forged key.
ALTER TABLE meshes ADD COLUMN key_commitment bytea;
ALTER TABLE meshes ADD COLUMN key_commitment_signature bytea;
-- Who granted a member its mesh key (a refused forgery names its granter).
ALTER TABLE members ADD COLUMN key_granted_by uuid;

-- The head of the log when the session was first seen. A new session does not receive what
-- its member's other sessions acknowledged before it existed (even when their watermark was
-- never saved, e.g. their node died).
ALTER TABLE sessions ADD COLUMN created_seq bigint NOT NULL DEFAULT 0;
-- Members whose grant this member refused as forged; they may not grant to it again.
ALTER TABLE members ADD COLUMN key_refused_granters uuid[] NOT NULL DEFAULT '{}';
