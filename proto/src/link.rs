//! Linking a device to a member someone already is elsewhere: the code a device shows, and
//! what the member hands it. The code is derived from the device's one-time key, so the member
//! who types it can check the key the broker hands back is the device's own.
//!
//! `code = crockford32(BLAKE2b-256(code_input(link_pubkey)))[..10]` (50 bits), shown as
//! `ABCDE-FGHJK`; input is case- and separator-insensitive ([`normalize`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{types::Role, ProtoError};

/// Characters of a code (Crockford's base32: no I, L, O, U).
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Characters in a code.
pub const CODE_LEN: usize = 10;

/// What is hashed to derive the code of `link_pubkey`.
pub fn code_input(link_pubkey: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + link_pubkey.len());
    out.extend_from_slice(b"plexus/link/v1\0");
    out.extend_from_slice(link_pubkey);
    out
}

/// The code for a 32-byte BLAKE2b digest of [`code_input`]: its first 50 bits in base32.
pub fn code_from_digest(digest: &[u8; 32]) -> String {
    let mut bits: u64 = 0;
    for b in &digest[..8] {
        bits = (bits << 8) | u64::from(*b);
    }
    (0..CODE_LEN).map(|i| ALPHABET[((bits >> (59 - 5 * i)) & 31) as usize] as char).collect()
}

/// A code as typed (any case, with or without `-` or spaces) in canonical form.
pub fn normalize(typed: &str) -> String {
    typed.chars().filter(|c| !matches!(c, '-' | ' ')).map(|c| c.to_ascii_uppercase()).collect()
}

/// `ABCDEFGHJK` → `ABCDE-FGHJK`, for people.
pub fn display(code: &str) -> String {
    if code.len() == CODE_LEN {
        format!("{}-{}", &code[..5], &code[5..])
    } else {
        code.to_owned()
    }
}

/// A canonical code: exactly [`CODE_LEN`] characters of [`ALPHABET`].
pub fn check_code(code: &str) -> Result<(), ProtoError> {
    if code.len() != CODE_LEN || !code.bytes().all(|b| ALPHABET.contains(&b)) {
        return Err(ProtoError::Invalid {
            field: "code",
            reason: "a link code is 10 characters of 0-9 and A-Z without I, L, O, U",
        });
    }
    Ok(())
}

/// What a member hands a linked device, as JSON sealed to the device's one-time key: enough
/// to be that member there (the device makes its own session key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkBundle {
    /// Format version (1).
    pub v: u32,
    /// Mesh.
    pub mesh_id: Uuid,
    /// Mesh name.
    pub mesh_name: String,
    /// Member.
    pub member_id: Uuid,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// The member's ed25519 secret key (64 bytes: seed ‖ public key), hex.
    pub member_secret: String,
    /// The current mesh key, hex, if the member holds it.
    #[serde(default)]
    pub mesh_key: Option<String>,
    /// The epoch of `mesh_key`.
    #[serde(default)]
    pub key_epoch: u32,
    /// Earlier mesh keys by epoch (hex), to read history sealed with them.
    #[serde(default)]
    pub retired_mesh_keys: std::collections::BTreeMap<u32, String>,
    /// The owner's commitment to the mesh key, hex, if known.
    #[serde(default)]
    pub key_commitment: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_fifty_bits_in_crockford_base32() {
        let mut digest = [0u8; 32];
        assert_eq!(code_from_digest(&digest), "0000000000");
        digest[0] = 0xff;
        digest[1] = 0xff;
        // 16 one bits: three whole characters, then the top bit of the fourth (0b10000 = G).
        assert_eq!(code_from_digest(&digest), "ZZZG000000");
        digest = [0xa5; 32];
        let code = code_from_digest(&digest);
        assert!(check_code(&code).is_ok(), "{code}");
        assert_eq!(normalize(&display(&code).to_lowercase()), code);
        assert!(check_code("ABCDE-FGHJ").is_err());
        assert!(check_code("ABCDEFGHJI").is_err(), "I is not in the alphabet");
        assert!(check_code("ABCDEFGHJK").is_ok());
    }
}
