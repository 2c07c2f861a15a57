-- Groups are a member's durable membership (issue 11), not a per-hello field; display names
-- are unique per mesh.

CREATE TABLE member_groups (
    mesh_id    uuid NOT NULL,
    member_id  uuid NOT NULL,
    name       text NOT NULL,
    role       text,
    -- Log head when the member joined: group messages before it are not its.
    joined_seq bigint NOT NULL DEFAULT 0,
    joined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mesh_id, member_id, name),
    FOREIGN KEY (mesh_id, member_id) REFERENCES members(mesh_id, id) ON DELETE CASCADE
);
CREATE INDEX member_groups_name ON member_groups (mesh_id, name);

-- What sessions said at hello so far becomes the member's membership.
INSERT INTO member_groups (mesh_id, member_id, name)
SELECT DISTINCT s.mesh_id, s.member_id, g FROM sessions s, unnest(s.groups) g
ON CONFLICT DO NOTHING;

-- Groups a claimer of the invite joins.
ALTER TABLE invites ADD COLUMN groups text[] NOT NULL DEFAULT '{}';

-- Existing duplicate names get a suffix, then names are unique (case-insensitively) among the
-- current members of a mesh.
UPDATE members m SET display_name = m.display_name || '-' || d.n
FROM (SELECT mesh_id, id, row_number() OVER (PARTITION BY mesh_id, lower(display_name) ORDER BY joined_at, id) AS n
      FROM members WHERE removed_at IS NULL) d
WHERE m.mesh_id = d.mesh_id AND m.id = d.id AND d.n > 1;
CREATE UNIQUE INDEX members_name ON members (mesh_id, lower(display_name)) WHERE removed_at IS NULL;
