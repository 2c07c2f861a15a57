//! Safe wrappers over the few libsodium primitives Plexus uses, and nothing else.
//!
//! - Member identity: ed25519 ([`SigningKey`], [`verify`]).
//! - Session keys and direct-message bodies: x25519 + `crypto_box` ([`BoxKeypair`]).
//! - Group and broadcast bodies: `crypto_secretbox` with the mesh key ([`seal_with_mesh_key`]).
//! - Handing the mesh key to a new member: `crypto_box_seal` ([`seal_anonymous`]).
//!
//! Every function calls [`init`] first; libsodium's own `sodium_init` is idempotent and
//! thread-safe.

use libsodium_sys as ffi;

/// Length of an ed25519 or x25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of a `crypto_box` / `crypto_secretbox` nonce.
pub const NONCE_LEN: usize = 24;
/// Length of a mesh key.
pub const MESH_KEY_LEN: usize = 32;
/// Bytes `crypto_box_seal` adds.
pub const SEAL_OVERHEAD: usize = 48;
/// Bytes `crypto_box` / `crypto_secretbox` add.
pub const MAC_LEN: usize = 16;

/// A cryptographic failure.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// libsodium could not initialise.
    #[error("libsodium failed to initialise")]
    Init,
    /// A key or nonce has the wrong length.
    #[error("{0} has the wrong length")]
    BadLength(&'static str),
    /// A signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A ciphertext does not open (wrong key, tampered, or truncated).
    #[error("ciphertext does not open")]
    OpenFailed,
    /// A key conversion failed (not a valid ed25519 point).
    #[error("key conversion failed")]
    Convert,
}

/// Initialise libsodium (idempotent).
pub fn init() -> Result<(), CryptoError> {
    // SAFETY: sodium_init is safe to call any number of times from any thread.
    let rc = unsafe { ffi::sodium_init() };
    if rc < 0 {
        return Err(CryptoError::Init);
    }
    Ok(())
}

/// Fill a buffer with random bytes.
pub fn random_bytes(buf: &mut [u8]) {
    let _ = init();
    // SAFETY: the pointer and length describe a valid, writable buffer.
    unsafe { ffi::randombytes_buf(buf.as_mut_ptr().cast(), buf.len()) }
}

/// A uniformly random number below `upper` (0 when `upper` is 0).
pub fn random_below(upper: u32) -> u32 {
    let _ = init();
    // SAFETY: plain function of its argument.
    unsafe { ffi::randombytes_uniform(upper) }
}

/// `N` random bytes.
pub fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    random_bytes(&mut out);
    out
}

fn check_len(what: &'static str, bytes: &[u8], len: usize) -> Result<(), CryptoError> {
    if bytes.len() != len {
        return Err(CryptoError::BadLength(what));
    }
    Ok(())
}

/// An ed25519 signing key (a member identity).
#[derive(Clone)]
pub struct SigningKey {
    secret: [u8; 64],
    public: [u8; PUBLIC_KEY_LEN],
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("public", &hex(&self.public)).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate() -> Result<SigningKey, CryptoError> {
        init()?;
        let mut public = [0u8; 32];
        let mut secret = [0u8; 64];
        // SAFETY: buffers have the sizes libsodium documents for crypto_sign_keypair.
        unsafe { ffi::crypto_sign_keypair(public.as_mut_ptr(), secret.as_mut_ptr()) };
        Ok(SigningKey { secret, public })
    }

    /// Rebuild from the 64-byte secret key (libsodium layout: seed ‖ public key).
    pub fn from_secret(secret: &[u8]) -> Result<SigningKey, CryptoError> {
        check_len("ed25519 secret key", secret, 64)?;
        let mut s = [0u8; 64];
        s.copy_from_slice(secret);
        let mut public = [0u8; 32];
        public.copy_from_slice(&secret[32..]);
        Ok(SigningKey { secret: s, public })
    }

    /// The 64-byte secret key.
    pub fn secret_bytes(&self) -> &[u8; 64] {
        &self.secret
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }

    /// Detached signature over `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut sig = [0u8; SIGNATURE_LEN];
        // SAFETY: sig is 64 bytes, msg pointer/len valid, secret is a 64-byte key.
        unsafe {
            ffi::crypto_sign_detached(
                sig.as_mut_ptr(),
                std::ptr::null_mut(),
                msg.as_ptr(),
                msg.len() as u64,
                self.secret.as_ptr(),
            )
        };
        sig
    }

    /// The x25519 keypair derived from this identity (for `crypto_box` to a member).
    pub fn to_box_keypair(&self) -> Result<BoxKeypair, CryptoError> {
        let mut public = [0u8; 32];
        let mut secret = [0u8; 32];
        // SAFETY: fixed-size buffers as documented.
        let rc1 = unsafe { ffi::crypto_sign_ed25519_pk_to_curve25519(public.as_mut_ptr(), self.public.as_ptr()) };
        // SAFETY: as above.
        let rc2 = unsafe { ffi::crypto_sign_ed25519_sk_to_curve25519(secret.as_mut_ptr(), self.secret.as_ptr()) };
        if rc1 != 0 || rc2 != 0 {
            return Err(CryptoError::Convert);
        }
        Ok(BoxKeypair { public, secret })
    }
}

/// Verify a detached ed25519 signature.
pub fn verify(public_key: &[u8], msg: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
    init()?;
    check_len("ed25519 public key", public_key, 32)?;
    check_len("signature", signature, 64)?;
    // SAFETY: lengths checked above; msg pointer/len valid.
    let rc = unsafe {
        ffi::crypto_sign_verify_detached(signature.as_ptr(), msg.as_ptr(), msg.len() as u64, public_key.as_ptr())
    };
    if rc != 0 {
        return Err(CryptoError::BadSignature);
    }
    Ok(())
}

/// Convert an ed25519 public key to the x25519 key `crypto_box` uses.
pub fn ed25519_to_x25519_public(public_key: &[u8]) -> Result<[u8; 32], CryptoError> {
    init()?;
    check_len("ed25519 public key", public_key, 32)?;
    let mut out = [0u8; 32];
    // SAFETY: fixed-size buffers, length checked.
    let rc = unsafe { ffi::crypto_sign_ed25519_pk_to_curve25519(out.as_mut_ptr(), public_key.as_ptr()) };
    if rc != 0 {
        return Err(CryptoError::Convert);
    }
    Ok(out)
}

/// An x25519 keypair for `crypto_box` (a session key, or a claim key).
#[derive(Clone)]
pub struct BoxKeypair {
    public: [u8; 32],
    secret: [u8; 32],
}

impl std::fmt::Debug for BoxKeypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxKeypair").field("public", &hex(&self.public)).finish_non_exhaustive()
    }
}

impl BoxKeypair {
    /// A fresh random keypair.
    pub fn generate() -> Result<BoxKeypair, CryptoError> {
        init()?;
        let mut public = [0u8; 32];
        let mut secret = [0u8; 32];
        // SAFETY: 32-byte buffers as documented.
        unsafe { ffi::crypto_box_keypair(public.as_mut_ptr(), secret.as_mut_ptr()) };
        Ok(BoxKeypair { public, secret })
    }

    /// Rebuild from the 32-byte secret key.
    pub fn from_secret(secret: &[u8]) -> Result<BoxKeypair, CryptoError> {
        init()?;
        check_len("x25519 secret key", secret, 32)?;
        let mut s = [0u8; 32];
        s.copy_from_slice(secret);
        let mut public = [0u8; 32];
        // SAFETY: 32-byte buffers.
        unsafe { ffi::crypto_scalarmult_base(public.as_mut_ptr(), s.as_ptr()) };
        Ok(BoxKeypair { public, secret: s })
    }

    /// Public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }

    /// Secret key.
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
    }

    /// `crypto_box_easy` to `their_public`; returns (nonce, ciphertext).
    pub fn seal_to(&self, their_public: &[u8], plaintext: &[u8]) -> Result<([u8; 24], Vec<u8>), CryptoError> {
        check_len("x25519 public key", their_public, 32)?;
        let nonce: [u8; 24] = random_array();
        let mut out = vec![0u8; plaintext.len() + MAC_LEN];
        // SAFETY: out has room for plaintext + MAC; key and nonce sizes checked.
        let rc = unsafe {
            ffi::crypto_box_easy(
                out.as_mut_ptr(),
                plaintext.as_ptr(),
                plaintext.len() as u64,
                nonce.as_ptr(),
                their_public.as_ptr(),
                self.secret.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(CryptoError::OpenFailed);
        }
        Ok((nonce, out))
    }

    /// `crypto_box_open_easy` from `their_public`.
    pub fn open_from(&self, their_public: &[u8], nonce: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        check_len("x25519 public key", their_public, 32)?;
        check_len("nonce", nonce, NONCE_LEN)?;
        if ciphertext.len() < MAC_LEN {
            return Err(CryptoError::OpenFailed);
        }
        let mut out = vec![0u8; ciphertext.len() - MAC_LEN];
        // SAFETY: out sized ciphertext - MAC; key and nonce sizes checked.
        let rc = unsafe {
            ffi::crypto_box_open_easy(
                out.as_mut_ptr(),
                ciphertext.as_ptr(),
                ciphertext.len() as u64,
                nonce.as_ptr(),
                their_public.as_ptr(),
                self.secret.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(CryptoError::OpenFailed);
        }
        Ok(out)
    }

    /// `crypto_box_seal_open`: open something sealed anonymously to this keypair.
    pub fn open_sealed(&self, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(CryptoError::OpenFailed);
        }
        let mut out = vec![0u8; sealed.len() - SEAL_OVERHEAD];
        // SAFETY: out sized sealed - overhead; keys are 32 bytes.
        let rc = unsafe {
            ffi::crypto_box_seal_open(
                out.as_mut_ptr(),
                sealed.as_ptr(),
                sealed.len() as u64,
                self.public.as_ptr(),
                self.secret.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(CryptoError::OpenFailed);
        }
        Ok(out)
    }
}

/// `crypto_box_seal`: encrypt to `their_public` without revealing the sender.
pub fn seal_anonymous(their_public: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    init()?;
    check_len("x25519 public key", their_public, 32)?;
    let mut out = vec![0u8; plaintext.len() + SEAL_OVERHEAD];
    // SAFETY: out has room for plaintext + overhead; key size checked.
    let rc = unsafe {
        ffi::crypto_box_seal(out.as_mut_ptr(), plaintext.as_ptr(), plaintext.len() as u64, their_public.as_ptr())
    };
    if rc != 0 {
        return Err(CryptoError::OpenFailed);
    }
    Ok(out)
}

/// A fresh random mesh key.
pub fn generate_mesh_key() -> [u8; MESH_KEY_LEN] {
    let _ = init();
    random_array()
}

/// `crypto_secretbox_easy` with the mesh key of key epoch `epoch`; returns (nonce, ciphertext).
///
/// The nonce is the epoch (big-endian u32) followed by 20 random bytes, so every mesh-key
/// ciphertext names the key that opens it ([`mesh_key_epoch`]) and the broker can refuse one
/// sealed with a key that was rotated away. 160 random bits keep random nonces safe from
/// collisions far beyond any mesh's message count.
pub fn seal_with_mesh_key(mesh_key: &[u8], epoch: u32, plaintext: &[u8]) -> Result<([u8; 24], Vec<u8>), CryptoError> {
    init()?;
    check_len("mesh key", mesh_key, MESH_KEY_LEN)?;
    let mut nonce: [u8; 24] = random_array();
    nonce[..4].copy_from_slice(&epoch.to_be_bytes());
    let mut out = vec![0u8; plaintext.len() + MAC_LEN];
    // SAFETY: sizes as documented, checked above.
    let rc = unsafe {
        ffi::crypto_secretbox_easy(
            out.as_mut_ptr(),
            plaintext.as_ptr(),
            plaintext.len() as u64,
            nonce.as_ptr(),
            mesh_key.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(CryptoError::OpenFailed);
    }
    Ok((nonce, out))
}

/// The key epoch a mesh-key nonce names (see [`seal_with_mesh_key`]); 0 for a short nonce.
pub fn mesh_key_epoch(nonce: &[u8]) -> u32 {
    match nonce.get(..4) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

/// `crypto_secretbox_open_easy` with the mesh key.
pub fn open_with_mesh_key(mesh_key: &[u8], nonce: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    init()?;
    check_len("mesh key", mesh_key, MESH_KEY_LEN)?;
    check_len("nonce", nonce, NONCE_LEN)?;
    if ciphertext.len() < MAC_LEN {
        return Err(CryptoError::OpenFailed);
    }
    let mut out = vec![0u8; ciphertext.len() - MAC_LEN];
    // SAFETY: sizes checked above.
    let rc = unsafe {
        ffi::crypto_secretbox_open_easy(
            out.as_mut_ptr(),
            ciphertext.as_ptr(),
            ciphertext.len() as u64,
            nonce.as_ptr(),
            mesh_key.as_ptr(),
        )
    };
    if rc != 0 {
        return Err(CryptoError::OpenFailed);
    }
    Ok(out)
}

/// HMAC-SHA256 of the concatenation of `parts` under `key` (any length), as webhook
/// signatures use it (libsodium `crypto_auth_hmacsha256`).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let _ = init();
    let mut out = [0u8; 32];
    // SAFETY: the state is initialized by _init before use; every pointer/length pair describes
    // a live slice; out is the 32 bytes _final writes.
    unsafe {
        let mut state = std::mem::MaybeUninit::<ffi::crypto_auth_hmacsha256_state>::uninit();
        ffi::crypto_auth_hmacsha256_init(state.as_mut_ptr(), key.as_ptr(), key.len());
        for p in parts {
            ffi::crypto_auth_hmacsha256_update(state.as_mut_ptr(), p.as_ptr(), p.len() as u64);
        }
        ffi::crypto_auth_hmacsha256_final(state.as_mut_ptr(), out.as_mut_ptr());
    }
    out
}

/// Whether two byte strings are equal, in time independent of where they differ.
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    // SAFETY: both pointers cover `a.len()` bytes when the lengths match.
    a.len() == b.len() && unsafe { ffi::sodium_memcmp(a.as_ptr().cast(), b.as_ptr().cast(), a.len()) } == 0
}

/// BLAKE2b-256 of `data` (libsodium `crypto_generichash`, no key).
pub fn hash32(data: &[u8]) -> [u8; 32] {
    let _ = init();
    let mut out = [0u8; 32];
    // SAFETY: out is 32 bytes (a permitted generichash length), no key.
    unsafe {
        ffi::crypto_generichash(out.as_mut_ptr(), out.len(), data.as_ptr(), data.len() as u64, std::ptr::null(), 0)
    };
    out
}

/// Short fingerprint of a public key: first 8 bytes of its BLAKE2b hash, hex.
pub fn fingerprint(public_key: &[u8]) -> String {
    let _ = init();
    let mut out = [0u8; 8];
    // SAFETY: out is 8 bytes (a permitted generichash length), no key.
    unsafe {
        ffi::crypto_generichash(
            out.as_mut_ptr(),
            out.len(),
            public_key.as_ptr(),
            public_key.len() as u64,
            std::ptr::null(),
            0,
        )
    };
    hex(&out)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Parse lowercase or uppercase hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(equal(&mac, &hmac_sha256(b"Jefe", &[b"what do ya want for nothing?"])));
        assert!(!equal(&mac, &[0; 32]));
        assert!(!equal(&mac, &mac[..31]));
    }

    #[test]
    fn sign_and_verify() {
        let k = SigningKey::generate().unwrap();
        let sig = k.sign(b"hello");
        assert!(verify(k.public_key(), b"hello", &sig).is_ok());
        assert_eq!(verify(k.public_key(), b"hellp", &sig), Err(CryptoError::BadSignature));
        let k2 = SigningKey::from_secret(k.secret_bytes()).unwrap();
        assert_eq!(k2.public_key(), k.public_key());
    }

    #[test]
    fn box_round_trip_and_tamper() {
        let a = BoxKeypair::generate().unwrap();
        let b = BoxKeypair::generate().unwrap();
        let (nonce, mut ct) = a.seal_to(b.public_key(), b"secret").unwrap();
        assert_eq!(b.open_from(a.public_key(), &nonce, &ct).unwrap(), b"secret");
        ct[0] ^= 1;
        assert_eq!(b.open_from(a.public_key(), &nonce, &ct), Err(CryptoError::OpenFailed));
    }

    #[test]
    fn member_box_via_converted_identity() {
        let member = SigningKey::generate().unwrap();
        let session = BoxKeypair::generate().unwrap();
        let to = ed25519_to_x25519_public(member.public_key()).unwrap();
        let (nonce, ct) = session.seal_to(&to, b"for all my sessions").unwrap();
        let mine = member.to_box_keypair().unwrap();
        assert_eq!(mine.open_from(session.public_key(), &nonce, &ct).unwrap(), b"for all my sessions");
    }

    #[test]
    fn sealed_mesh_key_and_secretbox() {
        let claim = BoxKeypair::generate().unwrap();
        let key = generate_mesh_key();
        let sealed = seal_anonymous(claim.public_key(), &key).unwrap();
        assert_eq!(sealed.len(), MESH_KEY_LEN + SEAL_OVERHEAD);
        let opened = claim.open_sealed(&sealed).unwrap();
        assert_eq!(opened, key);
        let (nonce, ct) = seal_with_mesh_key(&opened, 7, b"to the group").unwrap();
        assert_eq!(mesh_key_epoch(&nonce), 7);
        assert_eq!(open_with_mesh_key(&key, &nonce, &ct).unwrap(), b"to the group");
        assert!(open_with_mesh_key(&generate_mesh_key(), &nonce, &ct).is_err());
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex(&hex(&[0, 1, 254, 255])).unwrap(), vec![0, 1, 254, 255]);
        assert!(unhex("zz").is_none());
        assert_eq!(fingerprint(&[1; 32]).len(), 16);
    }
}
