-- Linking a device (a browser) to a member someone already is on another device (issue 13).
-- The device shows a code derived from its one-time key; the member's CLI looks the key up
-- by that code, checks the code matches the key, and leaves the member identity sealed to it.
-- Rows live ten minutes and are deleted when the device fetches its answer.

CREATE TABLE link_requests (
    code        text PRIMARY KEY,
    link_pubkey bytea NOT NULL,
    sealed      bytea,
    mesh_id     uuid,
    answered_by uuid,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX link_requests_created ON link_requests (created_at);
