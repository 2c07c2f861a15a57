//! Send rate limits across two nodes: one member floods from a session on each node; past the
//! member's shared budget every send is refused with `rate_limited` and a retry hint, nothing
//! refused is stored, and another member keeps sending unhindered meanwhile.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use plexus_client::{connection::ClientError, seal::SealTo};
use plexus_e2e::{raw_session, Broker, Mesh, TestDb};
use plexus_proto::types::{SessionMode, SessionProfile, Target};
use uuid::Uuid;

const LIMITS: &[(&str, &str)] = &[
    ("PLEXUS_LIMITS__SESSION_SENDS_PER_SEC", "200"),
    ("PLEXUS_LIMITS__SESSION_BURST", "100"),
    ("PLEXUS_LIMITS__MEMBER_SENDS_PER_SEC", "100"),
    ("PLEXUS_LIMITS__MEMBER_BURST", "64"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_two_nodes_is_refused_with_retry_hints_and_stores_nothing_refused() {
    let db = TestDb::create().await;
    let nodes = Broker::cluster_with(&db, 2, LIMITS).await;
    let mesh = Mesh::create(&nodes[0], &["ana", "bo", "cy"]).await;
    let (ana, bo, cy) = (mesh.peers[0].profile(), mesh.peers[1].profile(), mesh.peers[2].profile());
    let sp = SessionProfile::default;
    let flooders = [
        raw_session(&nodes[0].url, &ana, None, SessionMode::Session, None, sp()).await.expect("ana on node 0"),
        raw_session(&nodes[1].url, &ana, None, SessionMode::Session, None, sp()).await.expect("ana on node 1"),
    ];
    let other = raw_session(&nodes[1].url, &cy, None, SessionMode::Session, None, sp()).await.expect("cy");
    let bo_key = bo.member_key().expect("key").public_key().to_vec();
    let to_bo = Target::Member(bo.member_id);

    let started = Instant::now();
    let flood = flooders.iter().map(|s| {
        let (to_bo, bo_key) = (to_bo.clone(), bo_key.clone());
        async move {
            let (mut ok, mut limited, mut hints) = (0u64, 0u64, Vec::new());
            for i in 0..5_000 {
                match s
                    .send_sealed(
                        Uuid::new_v4(),
                        to_bo.clone(),
                        SealTo::Member(&bo_key),
                        format!("flood {i}").as_bytes(),
                        None,
                    )
                    .await
                {
                    Ok(_) => ok += 1,
                    Err(ClientError::RateLimited { retry_after, .. }) => {
                        limited += 1;
                        hints.push(retry_after);
                    }
                    Err(e) => panic!("a flooded send failed otherwise: {e}"),
                }
            }
            (ok, limited, hints)
        }
    });
    // Meanwhile another member sends at a normal pace.
    let steady = async {
        let mut latencies = Vec::new();
        for i in 0..100 {
            let t = Instant::now();
            other
                .send_sealed(
                    Uuid::new_v4(),
                    to_bo.clone(),
                    SealTo::Member(&bo_key),
                    format!("steady {i}").as_bytes(),
                    None,
                )
                .await
                .expect("another member is never limited by ana's flood");
            latencies.push(t.elapsed());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies
    };
    let (results, mut latencies) = tokio::join!(join_all(flood), steady);
    let elapsed = started.elapsed().as_secs_f64();
    let accepted: u64 = results.iter().map(|r| r.0).sum();
    let refused: u64 = results.iter().map(|r| r.1).sum();
    assert_eq!(accepted + refused, 10_000);
    assert!(refused > 0, "a flood of 10,000 was never limited");
    // One budget for both nodes: its burst, its rate over the run, and what each node reserved ahead.
    let allowed = 64.0 + 100.0 * elapsed + 2.0 * 4.0;
    assert!(
        (accepted as f64) <= allowed,
        "{accepted} accepted in {elapsed:.1} s; the shared budget allows {allowed:.0}"
    );
    for (_, _, hints) in &results {
        assert!(
            hints.iter().all(|h| *h > Duration::ZERO && *h <= Duration::from_secs(2)),
            "retry hints {:?}",
            &hints[..5.min(hints.len())]
        );
    }
    // Nothing refused was stored.
    let stored = db
        .scalar_i64(&format!(
            "SELECT count(*) FROM events WHERE sender_member = '{}' AND subtype IS NULL",
            ana.member_id
        ))
        .await;
    assert_eq!(stored as u64, accepted);
    latencies.sort();
    eprintln!(
        "accepted {accepted} of 10,000 in {elapsed:.1} s; cy's sends meanwhile: p50 {:?}, p99 {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100]
    );
    let metrics = plexus_e2e::http_get(nodes[0].port, "/metrics").expect("metrics").1
        + &plexus_e2e::http_get(nodes[1].port, "/metrics").expect("metrics").1;
    assert!(metrics.contains("plexus_rate_limited_total{scope=\"member\"}"), "no metric for limited sends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_mesh_quotas_refuse_new_state_and_memories_and_write_nothing() {
    let db = TestDb::create().await;
    let quotas = [("PLEXUS_COORDINATION__MAX_STATE_KEYS", "3"), ("PLEXUS_COORDINATION__MAX_MEMORIES", "2")];
    let node = Broker::start_with(&db, &quotas).await;
    let mesh = Mesh::create(&node, &["ana"]).await;
    let ana = &mesh.peers[0];
    for k in ["a", "b", "c"] {
        ana.json(&["state", "set", k, "1"]);
    }
    let over = ana.run(&["--json", "state", "set", "d", "1"]);
    assert!(!over.status.success());
    let err: serde_json::Value = serde_json::from_slice(&over.stdout).unwrap();
    assert_eq!(err["error"]["code"], "quota_exceeded", "{err}");
    // Existing keys still change; deleting one makes room.
    ana.json(&["state", "set", "a", "2"]);
    ana.json(&["state", "delete", "b"]);
    ana.json(&["state", "set", "d", "1"]);
    assert_eq!(db.scalar_i64("SELECT count(*) FROM state_entries").await, 3);

    ana.json(&["remember", "one"]);
    ana.json(&["remember", "two"]);
    assert!(!ana.run(&["remember", "three"]).status.success());
    assert_eq!(db.scalar_i64("SELECT count(*) FROM memories").await, 2);
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM events WHERE subtype = 'memory.remembered'").await,
        2,
        "no event for a refused write"
    );
}
