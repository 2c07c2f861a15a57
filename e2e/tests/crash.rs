//! Durability: `kill -9` of the broker while a peer is sending. Every message the sender saw
//! acknowledged is delivered exactly once; none is surfaced twice.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use plexus_cli::{
    client::ClientError,
    seal::{seal_for, SealTo},
};
use plexus_e2e::{raw_session, wait_until, Broker, Mesh, TestDb};
use plexus_proto::{
    ops,
    types::{Priority, SessionMode, SessionProfile, Target},
};
use uuid::Uuid;

const N: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_while_sending_1000_loses_and_doubles_nothing() {
    let db = TestDb::create().await;
    let mut broker = Broker::start(&db).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let (alice, bob) = (&mesh.peers[0], &mesh.peers[1]);
    let bob_profile = bob.profile();
    let receiver = bob.spawn_json(&["inbox", "--follow"]);

    let url = broker.url.clone();
    let profile = alice.profile();
    let acked = Arc::new(AtomicUsize::new(0));
    let acked_by_sender = acked.clone();
    let sender = tokio::spawn(async move {
        let ids: Vec<Uuid> = (0..N).map(|_| Uuid::new_v4()).collect();
        let (sid, key) = (Uuid::new_v4(), plexus_crypto::BoxKeypair::generate().unwrap());
        let mut conn = None;
        let mut i = 0;
        let mut retries = 0u32;
        while i < N {
            if conn.is_none() {
                match raw_session(
                    &url,
                    &profile,
                    Some((sid, key.clone())),
                    SessionMode::Control,
                    None,
                    SessionProfile::default(),
                )
                .await
                {
                    Ok(s) => conn = Some(s),
                    Err(_) => {
                        retries += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
            }
            let session = conn.as_ref().unwrap();
            let (sealing, nonce, ciphertext) = seal_for(
                SealTo::Member(&bob_profile.member_key().unwrap().public_key()[..]),
                &session.key,
                format!("m-{i}").as_bytes(),
            )
            .unwrap();
            let send = ops::Send {
                id: ids[i],
                target: Target::Member(bob_profile.member_id),
                priority: if i % 3 == 0 { Priority::Now } else { Priority::Next },
                reply_to: None,
                subtype: None,
                sealing,
                nonce,
                ciphertext,
            };
            match session.conn.call(&send).await {
                Ok(_) => {
                    i += 1;
                    acked_by_sender.store(i, Ordering::SeqCst);
                }
                Err(e) if e.is_transient() || matches!(e, ClientError::Remote { .. }) => {
                    // Not acknowledged: resend the same id on a new connection.
                    conn = None;
                    retries += 1;
                }
                Err(e) => panic!("send failed: {e}"),
            }
        }
        retries
    });

    assert!(wait_until(Duration::from_secs(60), || (acked.load(Ordering::SeqCst) >= N / 3).then_some(()))
        .await
        .is_some());
    broker.kill9();
    tokio::time::sleep(Duration::from_millis(300)).await;
    broker.restart().await;
    let retries = tokio::time::timeout(Duration::from_secs(120), sender).await.expect("sender finished").unwrap();
    assert!(retries > 0, "the kill did not interrupt the sender; the test proved nothing");

    let all = wait_until(Duration::from_secs(60), || (receiver.texts().len() >= N).then_some(())).await;
    // Give any duplicate a moment to show up before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in receiver.texts() {
        *counts.entry(t).or_default() += 1;
    }
    let missing: Vec<usize> = (0..N).filter(|i| !counts.contains_key(&format!("m-{i}"))).collect();
    let doubled: Vec<(&String, &usize)> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        all.is_some() && missing.is_empty(),
        "missing {} messages, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(doubled.is_empty(), "surfaced twice: {doubled:?}");
    assert_eq!(db.scalar_i64("SELECT count(*) FROM events").await, N as i64, "a resend was stored twice");
}
