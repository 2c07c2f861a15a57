//! Sealing message bodies for a target, and opening received ones. The broker only ever sees
//! the output of [`seal_for`].

use plexus_crypto as crypto;
use plexus_proto::{push::Message, types::Sealing};

/// What a body is sealed to.
#[derive(Clone, Copy)]
pub enum SealTo<'a> {
    /// A session's x25519 key.
    Session(&'a [u8]),
    /// A member's ed25519 key (converted to x25519).
    Member(&'a [u8]),
    /// The mesh key (the ring's current one).
    Mesh(&'a crate::keys::Keyring),
}

/// Seal `plaintext`; returns (sealing, nonce, ciphertext).
pub fn seal_for(
    to: SealTo<'_>,
    session: &crypto::BoxKeypair,
    plaintext: &[u8],
) -> Result<(Sealing, Vec<u8>, Vec<u8>), crypto::CryptoError> {
    Ok(match to {
        SealTo::Session(pk) => {
            let (n, c) = session.seal_to(pk, plaintext)?;
            (Sealing::BoxSession, n.to_vec(), c)
        }
        SealTo::Member(ed) => {
            let x = crypto::ed25519_to_x25519_public(ed)?;
            let (n, c) = session.seal_to(&x, plaintext)?;
            (Sealing::BoxMember, n.to_vec(), c)
        }
        SealTo::Mesh(ring) => {
            let (n, c) = ring.seal(plaintext)?;
            (Sealing::MeshKey, n.to_vec(), c)
        }
    })
}

/// Open a received message with this session's keys.
pub fn open(
    msg: &Message,
    session: &crypto::BoxKeypair,
    member: &crypto::SigningKey,
    mesh_keys: Option<&crate::keys::Keyring>,
) -> Result<Vec<u8>, crypto::CryptoError> {
    match msg.sealing {
        Sealing::BoxSession => session.open_from(&msg.sender_pubkey, &msg.nonce, &msg.ciphertext),
        Sealing::BoxMember => member.to_box_keypair()?.open_from(&msg.sender_pubkey, &msg.nonce, &msg.ciphertext),
        Sealing::MeshKey => match mesh_keys {
            Some(ring) => ring.open(&msg.nonce, &msg.ciphertext),
            None => Err(crypto::CryptoError::OpenFailed),
        },
        // A broker-written coordination event: the body is its JSON, shown as the summary.
        Sealing::Plain => match serde_json::from_slice::<plexus_proto::coord::CoordEvent>(&msg.ciphertext) {
            Ok(event) => Ok(event.summary.into_bytes()),
            Err(_) => Err(crypto::CryptoError::OpenFailed),
        },
    }
}
