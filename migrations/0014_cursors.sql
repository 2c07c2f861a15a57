-- Delivery state without a row per delivery (issue 15). A session's acknowledgements live in
-- its own row as a cursor: every message addressed to it with seq <= watermark is acknowledged
-- except those listed in `unacked`, and so is every seq listed in `acked_above` (acks that
-- arrived where the session's position was not known: a hello's cursor, a control
-- connection). "Pushed" is transient and lives in the cluster's memory (Redis); `receipts`
-- keeps only what someone can ask for later and no cursor says: "read".
ALTER TABLE sessions ADD COLUMN unacked bigint[] NOT NULL DEFAULT '{}';
ALTER TABLE sessions ADD COLUMN acked_above bigint[] NOT NULL DEFAULT '{}';

UPDATE sessions s SET acked_above = coalesce((
    SELECT array_agg(r.seq ORDER BY r.seq) FROM receipts r
    WHERE r.mesh_id = s.mesh_id AND r.session_id = s.id AND r.state >= 2 AND r.seq > s.watermark), '{}');
DELETE FROM receipts WHERE state < 3;

-- The union of two cursors' acknowledged sets, as a cursor. Acknowledgements only ever grow,
-- so merging is commutative and idempotent: writers need no ordering among themselves.
-- (broker/src/store/cursors.rs has the same function in Rust, with its tests.)
CREATE FUNCTION cursor_merge(t1 bigint, u1 bigint[], a1 bigint[], t2 bigint, u2 bigint[], a2 bigint[],
                             OUT watermark bigint, OUT unacked bigint[], OUT acked_above bigint[])
LANGUAGE sql IMMUTABLE AS $$
    SELECT greatest(t1, t2),
           coalesce((SELECT array_agg(DISTINCT q ORDER BY q) FROM unnest(u1 || u2) AS q
                     WHERE q <= greatest(t1, t2)
                       AND NOT ((q <= t1 AND q <> ALL (u1)) OR q = ANY (a1))
                       AND NOT ((q <= t2 AND q <> ALL (u2)) OR q = ANY (a2))), '{}'),
           coalesce((SELECT array_agg(DISTINCT q ORDER BY q) FROM unnest(a1 || a2) AS q
                     WHERE q > greatest(t1, t2)), '{}')
$$;
