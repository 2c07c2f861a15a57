-- Mesh-key rotation (issue 16). The mesh key has an epoch: 0 is the owner's key (committed in
-- meshes.key_commitment and handed out as members.sealed_mesh_key); each rotation adds one.
-- A removal or leave marks a rotation due until a key holder rotates.
ALTER TABLE meshes ADD COLUMN key_epoch integer NOT NULL DEFAULT 0;
ALTER TABLE meshes ADD COLUMN key_rotation_due boolean NOT NULL DEFAULT false;

CREATE TABLE key_rotations (
    mesh_id    uuid NOT NULL REFERENCES meshes (id) ON DELETE CASCADE,
    epoch      integer NOT NULL CHECK (epoch > 0),
    rotated_by uuid NOT NULL,
    commitment bytea NOT NULL,
    signature  bytea NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mesh_id, epoch)
);

-- Each member's copy of each rotated key, sealed to the member's own key.
CREATE TABLE member_epoch_keys (
    mesh_id    uuid NOT NULL,
    member_id  uuid NOT NULL,
    epoch      integer NOT NULL,
    sealed_key bytea NOT NULL,
    PRIMARY KEY (mesh_id, member_id, epoch),
    FOREIGN KEY (mesh_id, epoch) REFERENCES key_rotations (mesh_id, epoch) ON DELETE CASCADE
);
