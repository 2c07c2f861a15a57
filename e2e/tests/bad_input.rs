//! Bad input gets a typed error, changes nothing and never takes the node down.

use std::time::Duration;

use plexus_client::connection::ClientError;
use plexus_e2e::{raw_connect, raw_session, session_for, wait_until, Broker, Mesh, TestDb};
use plexus_proto::{
    limits, ops, signing,
    types::{Priority, Role, Sealing, SessionMode, SessionProfile, Target},
    CloseCode, ErrorCode, PROTOCOL_VERSION,
};
use uuid::Uuid;

fn code_of<T: std::fmt::Debug>(r: Result<T, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Remote { code, .. }) => code,
        other => panic!("expected a typed error, got {other:?}"),
    }
}

async fn counts(db: &TestDb) -> (i64, i64, i64) {
    (
        db.scalar_i64("SELECT count(*) FROM events").await,
        db.scalar_i64("SELECT count(*) FROM members").await,
        db.scalar_i64("SELECT count(*) FROM invites").await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_unknown_ops_and_versions() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice"]).await;
    let before = counts(&db).await;
    let conn = raw_connect(&broker).await;

    // Garbage, truncated and oversize frames: an error response with id 0, connection lives.
    for bytes in [vec![0xc1, 0xff, 0x00], vec![0x84, 0xa1, 0x76], vec![0u8; limits::MAX_FRAME_BYTES + 10]] {
        conn.send_raw(bytes).await.unwrap();
    }
    let unknown = conn.request_raw(PROTOCOL_VERSION, "drop_tables", vec![0x80]).await.unwrap();
    assert_eq!(unknown.err.unwrap().code, ErrorCode::UnknownOp);
    let old = conn.request_raw(99, "peers", vec![0x80]).await.unwrap();
    assert_eq!(old.err.unwrap().code, ErrorCode::UnsupportedVersion);
    let unauth = conn.request_raw(PROTOCOL_VERSION, "peers", vec![0x80]).await.unwrap();
    assert_eq!(unauth.err.unwrap().code, ErrorCode::NotAuthenticated);
    let bad_body = conn.request_raw(PROTOCOL_VERSION, "hello", vec![0x93, 0x01, 0x02]).await.unwrap();
    assert_eq!(bad_body.err.unwrap().code, ErrorCode::BadBody);

    // The session is still usable after all that.
    let s =
        raw_session(&broker.url, &mesh.peers[0].profile(), None, SessionMode::Control, None, SessionProfile::default())
            .await
            .unwrap();
    s.conn.call(&ops::Peers {}).await.unwrap();
    let metrics = plexus_e2e::http_get(broker.port, "/metrics").unwrap().1;
    assert!(metrics.contains("plexus_decode_errors_total{code=\"1\"}"), "decode errors not counted");
    assert!(metrics.contains("plexus_decode_errors_total{code=\"2\"}"), "oversize frame not counted");
    assert_eq!(counts(&db).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_fields_and_sqlish_strings() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice"]).await;
    let p = mesh.peers[0].profile();
    let before = counts(&db).await;
    let s = session_for(&broker.url, &p, SessionMode::Control).await;
    let big = ops::Send {
        id: Uuid::new_v4(),
        target: Target::All,
        priority: Priority::Now,
        reply_to: None,
        subtype: None,
        sealing: Sealing::MeshKey,
        nonce: vec![0; 24],
        ciphertext: vec![0; limits::MAX_CIPHERTEXT_BYTES + 1],
    };
    assert_eq!(code_of(s.conn.call(&big).await), ErrorCode::InvalidField);
    let bad_group =
        ops::Send { target: Target::Group("x'; DROP TABLE events; --".into()), ciphertext: vec![1; 17], ..big.clone() };
    assert_eq!(code_of(s.conn.call(&bad_group).await), ErrorCode::InvalidField);
    let wrong_sealing = ops::Send { target: Target::Member(p.member_id), ciphertext: vec![1; 17], ..big.clone() };
    assert_eq!(code_of(s.conn.call(&wrong_sealing).await), ErrorCode::InvalidField);
    let nobody = ops::Send {
        target: Target::Session(Uuid::new_v4()),
        sealing: Sealing::BoxSession,
        ciphertext: vec![1; 17],
        ..big
    };
    assert_eq!(code_of(s.conn.call(&nobody).await), ErrorCode::NotFound);
    let long_summary = ops::SetProfile { summary: Some("x".repeat(limits::MAX_SUMMARY + 1)), ..Default::default() };
    assert_eq!(code_of(s.conn.call(&long_summary).await), ErrorCode::InvalidField);
    assert_eq!(counts(&db).await, before);

    // SQL-ish text is just text: a summary survives verbatim. A session cannot pick the name
    // it is shown under (that is its member's).
    let sqlish = "Robert'); DROP TABLE members;--";
    let sp = SessionProfile {
        display_name: Some("owner".into()),
        summary: Some(sqlish.into()),
        ..SessionProfile::default()
    };
    let s2 = raw_session(&broker.url, &p, None, SessionMode::Session, None, sp).await.unwrap();
    let peers = s2.conn.call(&ops::Peers {}).await.unwrap();
    let me = peers.peers.iter().find(|x| x.session_id == s2.session_id).expect("listed");
    assert_eq!(me.profile.summary.as_deref(), Some(sqlish));
    assert_eq!(me.display_name, p.display_name, "a session renamed itself");
    assert_eq!(db.scalar_i64("SELECT count(*) FROM members").await, before.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_signatures_timestamps_and_replays() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice"]).await;
    let p = mesh.peers[0].profile();
    let key = plexus_crypto::BoxKeypair::generate().unwrap();
    let good = plexus_client::connection::signed_hello(
        &p,
        Uuid::new_v4(),
        key.public_key(),
        SessionMode::Control,
        None,
        SessionProfile::default(),
    )
    .unwrap();

    let mut forged = good.clone();
    forged.signature[0] ^= 1;
    assert_eq!(code_of(raw_connect(&broker).await.call(&forged).await), ErrorCode::BadSignature);
    let mut other_session = good.clone();
    other_session.session_id = Uuid::new_v4();
    assert_eq!(code_of(raw_connect(&broker).await.call(&other_session).await), ErrorCode::BadSignature);

    raw_connect(&broker).await.call(&good).await.expect("first hello");
    assert_eq!(code_of(raw_connect(&broker).await.call(&good).await), ErrorCode::ReplayedNonce);

    // A correctly signed hello from ten minutes ago.
    let member = p.member_key().unwrap();
    let mut stale = good.clone();
    stale.nonce = plexus_crypto::random_array::<16>().to_vec();
    stale.timestamp_ms -= 600_000;
    let signed = signing::hello_bytes(
        PROTOCOL_VERSION,
        stale.mesh_id,
        stale.member_id,
        stale.session_id,
        &stale.session_pubkey,
        stale.timestamp_ms,
        &stale.nonce,
    );
    stale.signature = member.sign(&signed).to_vec();
    assert_eq!(code_of(raw_connect(&broker).await.call(&stale).await), ErrorCode::StaleTimestamp);

    let conn = raw_connect(&broker).await;
    let mut again = good.clone();
    again.nonce = plexus_crypto::random_array::<16>().to_vec();
    let signed = signing::hello_bytes(
        PROTOCOL_VERSION,
        again.mesh_id,
        again.member_id,
        again.session_id,
        &again.session_pubkey,
        again.timestamp_ms,
        &again.nonce,
    );
    again.signature = member.sign(&signed).to_vec();
    conn.call(&again).await.unwrap();
    assert_eq!(code_of(conn.call(&again).await), ErrorCode::AlreadyAuthenticated);
}

async fn make_invite(
    conn: &plexus_client::connection::Connection,
    p: &plexus_client::profile::Profile,
    code: &str,
    uses: u32,
    expires_in_ms: i64,
) -> Result<ops::InviteInfo, ClientError> {
    let expires_at_ms = (plexus_e2e_now() as i64 + expires_in_ms) as u64;
    let member = p.member_key().unwrap();
    let sig = member.sign(&signing::invite_bytes(p.mesh_id, code, Role::Member, uses, expires_at_ms));
    conn.call(&ops::InviteCreate {
        code: code.into(),
        role: Role::Member,
        max_uses: uses,
        expires_at_ms,
        signature: sig.to_vec(),
        groups: Vec::new(),
    })
    .await
}

fn plexus_e2e_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn claim(code: &str) -> ops::InviteClaim {
    let member = plexus_crypto::SigningKey::generate().unwrap();
    let claim = plexus_crypto::BoxKeypair::generate().unwrap();
    let member_id = Uuid::new_v4();
    let sig = member.sign(&signing::claim_bytes(code, member_id, member.public_key(), claim.public_key()));
    ops::InviteClaim {
        code: code.into(),
        member_id,
        member_pubkey: member.public_key().to_vec(),
        claim_pubkey: claim.public_key().to_vec(),
        display_name: "newcomer".into(),
        signature: sig.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invites_expired_revoked_exhausted_forged() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice"]).await;
    let p = mesh.peers[0].profile();
    let s = session_for(&broker.url, &p, SessionMode::Control).await;

    assert_eq!(code_of(make_invite(&s.conn, &p, "PASTCODE1", 1, -1000).await), ErrorCode::InvalidField);
    make_invite(&s.conn, &p, "SHORTLIVED", 5, 300).await.unwrap();
    make_invite(&s.conn, &p, "REVOKEDONE", 5, 60_000).await.unwrap();
    make_invite(&s.conn, &p, "SINGLEUSE1", 1, 60_000).await.unwrap();
    assert_eq!(code_of(make_invite(&s.conn, &p, "SINGLEUSE1", 1, 60_000).await), ErrorCode::AlreadyExists);
    s.conn.call(&ops::InviteRevoke { code: "REVOKEDONE".into() }).await.unwrap();
    // An invite whose signature is not the issuer's.
    let bad = ops::InviteCreate {
        code: "FORGED0001".into(),
        role: Role::Member,
        max_uses: 1,
        expires_at_ms: plexus_e2e_now() + 60_000,
        signature: vec![7; 64],
        groups: Vec::new(),
    };
    assert_eq!(code_of(s.conn.call(&bad).await), ErrorCode::BadSignature);

    let anon = raw_connect(&broker).await;
    anon.call(&claim("SINGLEUSE1")).await.unwrap();
    assert_eq!(code_of(anon.call(&claim("SINGLEUSE1")).await), ErrorCode::InviteExhausted);
    assert_eq!(code_of(anon.call(&claim("REVOKEDONE")).await), ErrorCode::InviteRevoked);
    assert_eq!(code_of(anon.call(&claim("NOSUCHCODE")).await), ErrorCode::NotFound);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(code_of(anon.call(&claim("SHORTLIVED")).await), ErrorCode::InviteExpired);
    let mut wrong_pop = claim("REVOKEDONE");
    wrong_pop.signature[5] ^= 1;
    assert_eq!(code_of(anon.call(&wrong_pop).await), ErrorCode::BadSignature);
    assert_eq!(db.scalar_i64("SELECT count(*) FROM members").await, 2, "only the one good claim added a member");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_cannot_reach_other_meshes_and_removed_members_are_cut_off() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let a = Mesh::create(&broker, &["alice", "bob"]).await;
    let b = Mesh::create(&broker, &["zed"]).await;
    let alice = a.peers[0].profile();
    let bob = a.peers[1].profile();
    let zed = b.peers[0].profile();

    // Bob's identity presented for mesh B.
    let mut cross = bob.clone();
    cross.mesh_id = zed.mesh_id;
    assert_eq!(
        code_of(
            raw_session(&broker.url, &cross, None, SessionMode::Control, None, SessionProfile::default())
                .await
                .map(|_| ())
        ),
        ErrorCode::NotMember
    );

    // A message of mesh B is invisible from mesh A.
    let zs = session_for(&broker.url, &zed, SessionMode::Control).await;
    let id = Uuid::new_v4();
    zs.send_sealed(id, Target::All, plexus_client::seal::SealTo::Mesh(&zed.keyring().unwrap()), b"secret", None)
        .await
        .unwrap();
    let als = session_for(&broker.url, &alice, SessionMode::Control).await;
    assert_eq!(code_of(als.conn.call(&ops::MessageStatus { id }).await), ErrorCode::NotFound);
    assert_eq!(code_of(als.conn.call(&ops::MemberRemove { member_id: zed.member_id }).await), ErrorCode::NotFound);

    // A plain member may not remove anyone.
    let bs = session_for(&broker.url, &bob, SessionMode::Session).await;
    assert_eq!(code_of(bs.conn.call(&ops::MemberRemove { member_id: alice.member_id }).await), ErrorCode::Forbidden);

    // Removing bob closes his live session with a typed code and he cannot come back.
    als.conn.call(&ops::MemberRemove { member_id: bob.member_id }).await.unwrap();
    let closed = wait_until(Duration::from_secs(10), || bs.conn.closed()).await;
    assert_eq!(closed, Some(Some(CloseCode::MemberRemoved)));
    assert_eq!(
        code_of(
            raw_session(&broker.url, &bob, None, SessionMode::Control, None, SessionProfile::default())
                .await
                .map(|_| ())
        ),
        ErrorCode::NotMember
    );
}

/// Device links: a code that is not the one derived from its key is refused, a link is fetched
/// once, an answer needs a pending link, and the member's identity arrives sealed to the device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_links_are_checked_and_fetched_once() {
    use plexus_proto::link;
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice"]).await;
    let alice = &mesh.peers[0];
    let device = plexus_crypto::BoxKeypair::generate().unwrap();
    let code = link::code_from_digest(&plexus_crypto::hash32(&link::code_input(device.public_key())));
    let anon = raw_connect(&broker).await;

    // A code someone else's key derives is not this key's.
    let other = plexus_crypto::BoxKeypair::generate().unwrap();
    let wrong = ops::LinkOffer { code: code.clone(), link_pubkey: other.public_key().to_vec() };
    assert_eq!(code_of(anon.call(&wrong).await), ErrorCode::InvalidField);
    let garbage = ops::LinkOffer { code: "ILOU000000".into(), link_pubkey: device.public_key().to_vec() };
    assert_eq!(code_of(anon.call(&garbage).await), ErrorCode::InvalidField);
    assert_eq!(code_of(anon.call(&ops::LinkFetch { code: code.clone() }).await), ErrorCode::NotFound);

    anon.call(&ops::LinkOffer { code: code.clone(), link_pubkey: device.public_key().to_vec() }).await.unwrap();
    assert!(anon.call(&ops::LinkFetch { code: code.clone() }).await.unwrap().sealed.is_none(), "nothing yet");

    // The member's CLI answers it.
    let out = alice.run(&["--json", "link", &link::display(&code), "--yes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sealed = anon.call(&ops::LinkFetch { code: code.clone() }).await.unwrap().sealed.expect("answered");
    let bundle: link::LinkBundle =
        serde_json::from_slice(&device.open_sealed(&sealed).expect("sealed to the device")).unwrap();
    let profile = alice.profile();
    assert_eq!((bundle.member_id, bundle.mesh_id, bundle.role), (profile.member_id, profile.mesh_id, Role::Owner));
    assert_eq!(bundle.member_secret, profile.member_secret);
    assert_eq!(bundle.mesh_key, profile.mesh_key);
    // Fetched once; answering again finds nothing pending.
    assert_eq!(code_of(anon.call(&ops::LinkFetch { code: code.clone() }).await), ErrorCode::NotFound);
    let again = alice.run(&["--json", "link", &code, "--yes"]);
    assert!(!again.status.success());
    // No table keeps the identity around.
    assert_eq!(db.scalar_i64("SELECT count(*) FROM link_requests").await, 0);
}
