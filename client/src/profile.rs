//! Profiles: one per mesh this user belongs to, holding the broker URLs, the member identity,
//! the CLI's own session key and (once granted) the mesh key. They live under the config
//! directory (`$PLEXUS_HOME`, else `$XDG_CONFIG_HOME/plexus`, else `~/.config/plexus`) in
//! files readable only by the user (0600).

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use plexus_crypto::{hex, unhex, BoxKeypair, SigningKey};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A profile problem.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// No profile exists yet.
    #[error("no mesh profile found in {0}; run `plexus mesh create` or `plexus join` first")]
    None(PathBuf),
    /// Several exist and none was chosen.
    #[error("several meshes are configured ({0}); choose one with --mesh")]
    Ambiguous(String),
    /// The named one does not exist.
    #[error("no mesh profile named {0}")]
    NotFound(String),
    /// Reading or writing failed.
    #[error("profile file {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file does not parse or holds a bad key.
    #[error("profile file {0} is corrupt: {1}")]
    Corrupt(PathBuf, String),
}

/// Everything the CLI knows about one mesh membership.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    /// Local name of the profile (the mesh's name, made file-safe).
    pub name: String,
    /// Broker URLs (`ws://` or `wss://`), tried in order with failover.
    pub brokers: Vec<String>,
    /// PEM file of an extra CA to trust for `wss://` (e.g. a self-signed broker).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Mesh id.
    pub mesh_id: Uuid,
    /// Mesh name.
    pub mesh_name: String,
    /// Member id.
    pub member_id: Uuid,
    /// Display name.
    pub display_name: String,
    /// ed25519 secret key (hex, 64 bytes).
    pub member_secret: String,
    /// The CLI's own session id.
    pub session_id: Uuid,
    /// The CLI session's x25519 secret key (hex).
    pub session_secret: String,
    /// The current mesh key (hex), once granted.
    #[serde(default)]
    pub mesh_key: Option<String>,
    /// The epoch of `mesh_key` (0 until the mesh's first key rotation).
    #[serde(default)]
    pub key_epoch: u32,
    /// Earlier mesh keys by epoch (hex), kept to read history sealed with them.
    #[serde(default)]
    pub retired_mesh_keys: std::collections::BTreeMap<u32, String>,
    /// x25519 secret the mesh key is sealed to, until it arrives (hex).
    #[serde(default)]
    pub claim_secret: Option<String>,
    /// The owner's commitment to the mesh key (hex), once its signature was checked: a granted
    /// key must match it.
    #[serde(default)]
    pub key_commitment: Option<String>,
}

/// What became of a sealed mesh key handed to this member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Opened, matched the owner's commitment (or the mesh has none) and kept.
    Stored,
    /// Opened, but it is not the key the owner committed to: a forgery, not kept.
    Forged,
    /// Not for this member (no claim secret, or it does not open).
    Unusable,
}

/// The config directory.
pub fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("PLEXUS_HOME") {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME") {
        return PathBuf::from(x).join("plexus");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".config").join("plexus")
}

/// Create (truncating) a file readable only by the user.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

fn ensure_dir(dir: &Path) -> Result<(), ProfileError> {
    std::fs::create_dir_all(dir).map_err(|source| ProfileError::Io { path: dir.to_owned(), source })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// Make a name safe as a file name.
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c.to_ascii_lowercase() } else { '-' })
        .collect();
    let s = s.trim_matches('-').to_owned();
    if s.is_empty() {
        "mesh".into()
    } else {
        s
    }
}

impl Profile {
    fn dir(home: &Path) -> PathBuf {
        home.join("meshes")
    }

    /// Path of this profile's file.
    pub fn path(&self, home: &Path) -> PathBuf {
        Self::dir(home).join(format!("{}.json", self.name))
    }

    /// Path of the CLI session's cursor.
    pub fn cursor_path(&self, home: &Path) -> PathBuf {
        home.join("cursors").join(format!("{}.json", self.session_id))
    }

    /// Save (0600) and make it the default when it is the first.
    pub fn save(&self, home: &Path) -> Result<(), ProfileError> {
        ensure_dir(&Self::dir(home))?;
        ensure_dir(&home.join("cursors"))?;
        let path = self.path(home);
        let json = serde_json::to_vec_pretty(self).map_err(|e| ProfileError::Corrupt(path.clone(), e.to_string()))?;
        // Several processes of one member (its CLI, agents, followers) save the same profile;
        // each writes its own temporary file, so a rename never takes another's away.
        let tmp = path.with_extension(format!("tmp.{}.{}", std::process::id(), plexus_crypto::random_below(u32::MAX)));
        let write = || -> std::io::Result<()> {
            let mut f = create_private(&tmp)?;
            f.write_all(&json)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|source| ProfileError::Io { path: path.clone(), source })?;
        let default = home.join("default");
        if !default.exists() {
            std::fs::write(&default, &self.name).map_err(|source| ProfileError::Io { path: default, source })?;
        }
        Ok(())
    }

    /// Load the named profile, or the default one.
    pub fn load(home: &Path, name: Option<&str>) -> Result<Profile, ProfileError> {
        let name = match name {
            Some(n) => slug(n),
            None => match std::fs::read_to_string(home.join("default")) {
                Ok(n) if !n.trim().is_empty() => n.trim().to_owned(),
                _ => {
                    let all = Self::list(home)?;
                    match all.len() {
                        0 => return Err(ProfileError::None(home.to_owned())),
                        1 => all[0].clone(),
                        _ => return Err(ProfileError::Ambiguous(all.join(", "))),
                    }
                }
            },
        };
        let path = Self::dir(home).join(format!("{name}.json"));
        let bytes = std::fs::read(&path).map_err(|_| ProfileError::NotFound(name.clone()))?;
        let p: Profile =
            serde_json::from_slice(&bytes).map_err(|e| ProfileError::Corrupt(path.clone(), e.to_string()))?;
        p.member_key().map_err(|e| ProfileError::Corrupt(path.clone(), e))?;
        p.session_key().map_err(|e| ProfileError::Corrupt(path, e))?;
        Ok(p)
    }

    /// Names of every profile.
    pub fn list(home: &Path) -> Result<Vec<String>, ProfileError> {
        let dir = Self::dir(home);
        let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
        let mut names: Vec<String> = entries
            .filter_map(std::result::Result::ok)
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Delete this profile and its cursor (after leaving the mesh); the default goes with it.
    pub fn remove(&self, home: &Path) -> Result<(), ProfileError> {
        for path in [self.path(home), self.cursor_path(home)] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(ProfileError::Io { path, source: e });
                }
                _ => {}
            }
        }
        let default = home.join("default");
        if std::fs::read_to_string(&default).is_ok_and(|d| d.trim() == self.name) {
            std::fs::remove_file(&default).map_err(|source| ProfileError::Io { path: default, source })?;
        }
        Ok(())
    }

    /// Make this profile the default.
    pub fn set_default(&self, home: &Path) -> Result<(), ProfileError> {
        let default = home.join("default");
        std::fs::write(&default, &self.name).map_err(|source| ProfileError::Io { path: default, source })
    }

    /// The member identity.
    pub fn member_key(&self) -> Result<SigningKey, String> {
        let bytes = unhex(&self.member_secret).ok_or("member_secret is not hex")?;
        SigningKey::from_secret(&bytes).map_err(|e| e.to_string())
    }

    /// The CLI session key.
    pub fn session_key(&self) -> Result<BoxKeypair, String> {
        let bytes = unhex(&self.session_secret).ok_or("session_secret is not hex")?;
        BoxKeypair::from_secret(&bytes).map_err(|e| e.to_string())
    }

    /// Every mesh key this member holds, if it holds any.
    pub fn keyring(&self) -> Option<crate::keys::Keyring> {
        let current = self.mesh_key.as_deref().and_then(unhex)?;
        let retired = self.retired_mesh_keys.iter().filter_map(|(e, k)| Some((*e, unhex(k)?))).collect();
        Some(crate::keys::Keyring::new(self.key_epoch, current, retired))
    }

    /// Keep the mesh key of `epoch` (already checked): a newer one becomes current, the
    /// current one retires; an older one is kept for history. True when it was new here.
    pub fn keep_epoch_key(&mut self, epoch: u32, key: &[u8]) -> bool {
        let held = (self.mesh_key.is_some() && self.key_epoch == epoch) || self.retired_mesh_keys.contains_key(&epoch);
        if held {
            return false;
        }
        match self.mesh_key.take() {
            Some(current) if epoch < self.key_epoch => {
                self.mesh_key = Some(current);
                self.retired_mesh_keys.insert(epoch, hex(key));
            }
            previous => {
                if let Some(p) = previous {
                    self.retired_mesh_keys.insert(self.key_epoch, p);
                }
                self.mesh_key = Some(hex(key));
                self.key_epoch = epoch;
            }
        }
        true
    }

    /// Keep the owner's key commitment from a hello reply once its signature verifies against
    /// the owner's key; true when it was learned now.
    pub fn learn_commitment(&mut self, welcome: &plexus_proto::ops::Welcome) -> bool {
        if self.key_commitment.is_some() {
            return false;
        }
        let (Some(c), Some(sig), Some(owner)) =
            (&welcome.key_commitment, &welcome.key_commitment_signature, &welcome.owner_pubkey)
        else {
            return false;
        };
        let signed = plexus_proto::signing::key_commitment_bytes(self.mesh_id, c);
        if plexus_crypto::verify(owner, &signed, sig).is_err() {
            tracing::warn!("the mesh key commitment's signature does not verify; ignoring it");
            return false;
        }
        self.key_commitment = Some(hex(c));
        true
    }

    /// Whether `key` is the mesh key the owner committed to (true when there is no commitment).
    pub fn matches_commitment(&self, key: &[u8]) -> bool {
        match self.key_commitment.as_deref().and_then(unhex) {
            Some(expected) => {
                plexus_crypto::hash32(&plexus_proto::signing::mesh_key_commitment_input(self.mesh_id, key))[..]
                    == expected[..]
            }
            None => true,
        }
    }

    /// Open a sealed mesh key with the claim secret and keep it if it is the committed key.
    pub fn accept_sealed_mesh_key(&mut self, sealed: &[u8]) -> KeyOutcome {
        let Some(secret) = self.claim_secret.as_deref().and_then(unhex) else { return KeyOutcome::Unusable };
        let Ok(claim) = BoxKeypair::from_secret(&secret) else { return KeyOutcome::Unusable };
        match claim.open_sealed(sealed) {
            Ok(key) if key.len() == plexus_crypto::MESH_KEY_LEN => {
                if !self.matches_commitment(&key) {
                    return KeyOutcome::Forged;
                }
                self.keep_epoch_key(0, &key);
                self.claim_secret = None;
                KeyOutcome::Stored
            }
            _ => KeyOutcome::Unusable,
        }
    }
}
