//! Mesh-key rotation when a member goes: the removed member's keys open nothing sealed after
//! it went (checked on the ciphertext as stored), the others read old and new, a stale key is
//! refused without storing anything, and a member who joins later gets the current key.

use std::time::Duration;

use plexus_client::{connection::push_as, seal::SealTo, Profile};
use plexus_e2e::{session_for, wait_until, Broker, Mesh, Peer, TestDb};
use plexus_proto::{ops, types::SessionMode, types::Target, ErrorCode};
use serde_json::Value;
use uuid::Uuid;

const T: Duration = Duration::from_secs(30);

/// Every group/broadcast body stored for the mesh: (seq, nonce, ciphertext).
async fn mesh_key_bodies(db: &TestDb) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls).await.expect("connect test db");
    tokio::spawn(conn);
    let rows = client
        .query("SELECT seq, nonce, ciphertext FROM events WHERE sealing = 2 ORDER BY seq", &[])
        .await
        .expect("query events");
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

/// The bodies among `bodies` that `profile`'s keys open, as text.
fn readable(profile: &Profile, bodies: &[(i64, Vec<u8>, Vec<u8>)]) -> Vec<String> {
    let Some(ring) = profile.keyring() else { return Vec::new() };
    bodies
        .iter()
        .filter_map(|(_, nonce, ct)| ring.open(nonce, ct).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

fn key_epoch(db_epoch: &Value) -> u64 {
    db_epoch.as_u64().unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_rotates_the_key_and_the_removed_member_cannot_read_what_follows() {
    let db = TestDb::create().await;
    let nodes = Broker::cluster(&db, 2).await;
    let mesh = Mesh::create(&nodes[0], &["alice", "bob", "carol"]).await;
    let (alice, bob, carol) = (&mesh.peers[0], &mesh.peers[1], &mesh.peers[2]);
    // Bob lives on the other node: the rotation reaches him through the fan-out.
    bob.set_brokers(&[&nodes[1].url]);
    let bob_follows = bob.spawn_json(&["inbox", "--follow"]);
    assert!(wait_until(T, || (alice.json(&["peers"])["peers"].as_array().map(Vec::len) == Some(1)).then_some(()))
        .await
        .is_some());

    alice.json(&["send", "*", "before carol left"]);
    assert!(bob_follows.wait_text("before carol left", T).await, "{:?}", bob_follows.lines());
    // What carol holds when she is removed: everything she could ever use.
    let carols_keys = carol.profile();
    assert_eq!(readable(&carols_keys, &mesh_key_bodies(&db).await), ["before carol left"]);

    let removed = alice.json(&["member", "remove", "carol"]);
    assert_eq!((key_epoch(&removed["key_epoch"]), &removed["rotation_due"]), (1, &Value::Bool(false)), "{removed}");
    let audit = alice.json(&["audit", "list"]);
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.ends_with(&["member.removed", "key.rotated"]), "{actions:?}");

    // Bob's follower takes the new key when it is pushed, and keeps the old one.
    assert!(
        wait_until(T, || (bob.profile().key_epoch == 1).then_some(())).await.is_some(),
        "bob never took the rotated key"
    );
    assert!(bob.profile().retired_mesh_keys.contains_key(&0), "bob dropped the old key");

    alice.json(&["send", "*", "after carol left"]);
    bob.json(&["send", "*", "bob, after carol left"]);
    assert!(bob_follows.wait_text("after carol left", T).await, "{:?}", bob_follows.lines());
    let inbox = alice.json(&["inbox"]);
    let texts: Vec<&str> = inbox["messages"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(texts.contains(&"bob, after carol left"), "{inbox}");

    // On the ciphertext as stored: carol's keys open only what came before her removal; the
    // remaining members open old and new; every new body names epoch 1.
    let bodies = mesh_key_bodies(&db).await;
    assert_eq!(bodies.len(), 3);
    assert_eq!(readable(&carols_keys, &bodies), ["before carol left"]);
    assert_eq!(readable(&bob.profile(), &bodies), ["before carol left", "after carol left", "bob, after carol left"]);
    assert_eq!(readable(&alice.profile(), &bodies).len(), 3);
    let epochs: Vec<u32> = bodies.iter().map(|(_, n, _)| plexus_crypto::mesh_key_epoch(n)).collect();
    assert_eq!(epochs, [0, 1, 1]);

    // A client still sealing with the old key is refused and nothing is stored.
    let mut stale = alice.profile();
    stale.mesh_key = stale.retired_mesh_keys.get(&0).cloned();
    stale.key_epoch = 0;
    let raw = session_for(&nodes[1].url, &alice.profile(), SessionMode::Control).await;
    let refused = raw
        .send_sealed(Uuid::new_v4(), Target::All, SealTo::Mesh(&stale.keyring().unwrap()), b"with the old key", None)
        .await
        .expect_err("a body sealed with the retired key was accepted");
    assert_eq!(refused.code(), Some(ErrorCode::StaleKey), "{refused}");
    assert_eq!(mesh_key_bodies(&db).await.len(), 3, "a refused message was stored");
    drop(bob_follows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_member_leaves_the_next_sender_rotates_and_a_later_joiner_gets_the_current_key() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob", "dave"]).await;
    let (alice, bob, dave) = (&mesh.peers[0], &mesh.peers[1], &mesh.peers[2]);
    let daves_keys = dave.profile();
    let left = dave.json(&["mesh", "leave", "--yes"]);
    assert!(left["left"].is_string(), "{left}");
    assert_eq!(db.scalar_i64("SELECT count(*) FROM meshes WHERE key_rotation_due").await, 1);

    // Nobody holding the key was online: bob's client sees the rotation is due when it
    // connects, rotates, and only then seals and sends.
    let sent = bob.json(&["send", "*", "first after dave left"]);
    assert!(sent["seq"].is_u64(), "{sent}");
    assert_eq!(db.scalar_i64("SELECT key_epoch::bigint FROM meshes").await, 1);
    let bodies = mesh_key_bodies(&db).await;
    assert!(readable(&daves_keys, &bodies).is_empty(), "dave reads what was sent after he left");
    // Alice was offline during all this: her next command takes the new key.
    let status = alice.json(&["key", "status"]);
    assert_eq!((key_epoch(&status["epoch"]), key_epoch(&status["my_epoch"])), (1, 1), "{status}");
    assert_eq!(readable(&alice.profile(), &bodies), ["first after dave left"]);

    // A member who joins now gets the owner's key (checked against the owner's commitment)
    // and the current one. A grant of the owner's key alone is refused: the joiner could not
    // read or send group traffic with it.
    let code = alice.json(&["invite", "create"])["code"].as_str().unwrap().to_owned();
    let mut bob_online = session_for(&broker.url, &bob.profile(), SessionMode::Session).await;
    let erin = Peer::new("erin");
    let mut joining = erin.spawn_json(&["join", &code, "--broker", &broker.url, "--name", "erin", "--wait", "60"]);
    let request = tokio::time::timeout(T, async {
        loop {
            let p = bob_online.conn.next_push().await?;
            if let Some(r) = push_as::<plexus_proto::push::KeyRequest>(&p) {
                return Some(r);
            }
        }
    })
    .await
    .ok()
    .flatten()
    .expect("bob saw erin's key request");
    let owners_key = bob.profile().keyring().unwrap().key(0).unwrap().to_vec();
    let sealed = plexus_crypto::seal_anonymous(&request.claim_pubkey, &owners_key).unwrap();
    let grant = ops::KeyGrant { member_id: request.member_id, sealed_mesh_key: sealed, epoch_keys: vec![] };
    let refused = bob_online.conn.call(&grant).await.expect_err("a grant without the current key was stored");
    assert_eq!(refused.code(), Some(ErrorCode::Conflict), "{refused}");
    drop(bob_online);
    let follower = alice.spawn_json(&["inbox", "--follow"]);
    assert!(joining.wait_exit(T).await, "erin's join did not finish");
    assert!(joining.lines().iter().any(|l| l["mesh_key"] == Value::Bool(true)), "{:?}", joining.lines());
    drop(follower);
    let status = erin.json(&["key", "status"]);
    assert_eq!(key_epoch(&status["my_epoch"]), 1, "{status}");
    alice.json(&["send", "*", "welcome erin"]);
    let inbox = erin.json(&["inbox"]);
    let texts: Vec<&str> = inbox["messages"].as_array().unwrap().iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["welcome erin"], "{inbox}");
    // A manual rotation moves everyone on again.
    let rotated = bob.json(&["key", "rotate"]);
    assert_eq!(key_epoch(&rotated["epoch"]), 2, "{rotated}");
    erin.json(&["send", "*", "erin at epoch 2"]);
    let bodies = mesh_key_bodies(&db).await;
    assert_eq!(plexus_crypto::mesh_key_epoch(&bodies.last().unwrap().1), 2);
    alice.json(&["key", "status"]);
    assert_eq!(readable(&alice.profile(), &bodies).len(), 3, "alice reads epochs 1 and 2");
}
