//! Shared by the load generator and the fault harness: a mesh of fresh members made over the
//! protocol (owner, invite, claims), and small measurement helpers.

use anyhow::Result;
use plexus_client::{
    connection::{signed_hello, Connection, TlsOptions},
    profile::Profile,
};
use plexus_crypto::{hex, BoxKeypair, SigningKey};
use plexus_proto::{
    ops, signing,
    types::{Role, SessionMode, SessionProfile},
};
use uuid::Uuid;

/// A member made for a run: its profile (member and session keys) and session key.
pub struct Peer {
    /// Profile with the member's keys and a session id.
    pub profile: Profile,
    /// The session key of `profile.session_id`.
    pub session: BoxKeypair,
}

/// A profile for a member made here.
pub fn member_profile(mesh_id: Uuid, member_id: Uuid, key: &SigningKey, brokers: &[String]) -> Result<Profile> {
    let session = BoxKeypair::generate()?;
    Ok(Profile {
        name: format!("load-{member_id}"),
        brokers: brokers.to_vec(),
        ca_file: None,
        mesh_id,
        mesh_name: "load".into(),
        member_id,
        display_name: format!("load-{}", &member_id.to_string()[..8]),
        member_secret: hex(key.secret_bytes()),
        session_id: Uuid::new_v4(),
        session_secret: hex(session.secret_bytes()),
        mesh_key: None,
        key_epoch: 0,
        retired_mesh_keys: Default::default(),
        claim_secret: None,
        key_commitment: None,
    })
}

/// Create a mesh on `brokers[0]` and `n` members who claimed an invite (no mesh key: runs use
/// direct messages).
pub async fn setup(brokers: &[String], n: usize, operator_token: Option<String>) -> Result<Vec<Peer>> {
    Ok(setup_with_spare(brokers, n, 0, operator_token).await?.0)
}

/// [`setup`], leaving `spare` uses of the invite for someone else (a browser) to claim; returns
/// the invite code too.
pub async fn setup_with_spare(
    brokers: &[String],
    n: usize,
    spare: u32,
    operator_token: Option<String>,
) -> Result<(Vec<Peer>, String)> {
    let tls = TlsOptions::default();
    let conn = Connection::open(&brokers[0], &tls).await?;
    let owner_key = SigningKey::generate()?;
    let (mesh_id, owner_id) = (Uuid::new_v4(), Uuid::new_v4());
    let sig = owner_key.sign(&signing::mesh_create_bytes(mesh_id, "load", owner_id, owner_key.public_key()));
    conn.call(&ops::MeshCreate {
        mesh_id,
        name: "load".into(),
        owner_member_id: owner_id,
        owner_pubkey: owner_key.public_key().to_vec(),
        owner_display_name: "load-owner".into(),
        operator_token,
        signature: sig.to_vec(),
        key_commitment: None,
        key_commitment_signature: None,
    })
    .await?;
    let owner = member_profile(mesh_id, owner_id, &owner_key, brokers)?;
    let owner_session = BoxKeypair::generate()?;
    let hello = signed_hello(
        &owner,
        Uuid::new_v4(),
        owner_session.public_key(),
        SessionMode::Control,
        None,
        SessionProfile::default(),
    )?;
    conn.call(&hello).await?;
    let code: String = format!("LOAD{}", &Uuid::new_v4().simple().to_string()[..12]).to_uppercase();
    let expires_at_ms = plexus_now_ms() + 3_600_000;
    let uses = n as u32 + spare;
    let sig = owner_key.sign(&signing::invite_bytes(mesh_id, &code, Role::Member, uses, expires_at_ms));
    conn.call(&ops::InviteCreate {
        code: code.clone(),
        role: Role::Member,
        max_uses: uses,
        expires_at_ms,
        signature: sig.to_vec(),
        groups: Vec::new(),
    })
    .await?;
    let mut peers = Vec::with_capacity(n);
    let mut anon = Connection::open(&brokers[0], &tls).await?;
    for i in 0..n {
        // A connection that never says hello is closed after the hello deadline: claim a
        // large mesh over several.
        if i > 0 && i % 500 == 0 {
            anon.close().await;
            anon = Connection::open(&brokers[0], &tls).await?;
        }
        let key = SigningKey::generate()?;
        let claim = BoxKeypair::generate()?;
        let member_id = Uuid::new_v4();
        let sig = key.sign(&signing::claim_bytes(&code, member_id, key.public_key(), claim.public_key()));
        anon.call(&ops::InviteClaim {
            code: code.clone(),
            member_id,
            member_pubkey: key.public_key().to_vec(),
            claim_pubkey: claim.public_key().to_vec(),
            display_name: format!("load-{}", &member_id.to_string()[..8]),
            signature: sig.to_vec(),
        })
        .await?;
        let profile = member_profile(mesh_id, member_id, &key, brokers)?;
        let session = profile.session_key().map_err(anyhow::Error::msg)?;
        peers.push(Peer { profile, session });
    }
    Ok((peers, code))
}

/// Now, in milliseconds since the epoch.
pub fn plexus_now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The `p` quantile of sorted values (0 when empty).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
