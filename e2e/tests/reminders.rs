//! Reminders against real broker processes: a thousand due in the same second fire once each
//! across two nodes, a reminder whose owning node is killed just before its due time still
//! fires once, a cron reminder resumes after downtime with one catch-up (not one per missed
//! slot), and bad schedules are refused with a reason.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plexus_client::{
    connection::ClientError,
    seal::{seal_for, SealTo},
};
use plexus_e2e::{cluster_env, session_for, wait_until_async, Broker, Mesh, RawSession, TestDb};
use plexus_proto::{
    coord::{self as c, Schedule},
    types::{Priority, SessionMode, Target},
    ErrorCode,
};

const T: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A reminder to the member `(id, ed25519 key)`, sealed with `s`'s session key.
fn to_self(s: &RawSession, member: &(uuid::Uuid, Vec<u8>), schedule: Schedule, text: &str) -> c::RemindCreate {
    let (member_id, member_pubkey) = member;
    let (sealing, nonce, ciphertext) = seal_for(SealTo::Member(member_pubkey), &s.key, text.as_bytes()).unwrap();
    c::RemindCreate {
        schedule,
        target: Target::Member(*member_id),
        priority: Priority::Now,
        sealing,
        nonce,
        ciphertext,
        label: Some(text.to_owned()),
    }
}

fn member_pubkey(mesh: &Mesh, i: usize) -> (uuid::Uuid, Vec<u8>) {
    let p = mesh.peers[i].profile();
    (p.member_id, p.member_key().unwrap().public_key().to_vec())
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.scalar_i64(sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_reminders_due_in_one_second_fire_once_each_across_two_nodes() {
    let db = TestDb::create().await;
    let nodes = Broker::cluster_with(&db, 2, &[("PLEXUS_COORDINATION__REMINDER_CLAIM_INTERVAL_MS", "200")]).await;
    let mesh = Mesh::create(&nodes[0], &["ana"]).await;
    let pk = member_pubkey(&mesh, 0);
    let a = session_for(&nodes[0].url, &mesh.peers[0].profile(), SessionMode::Control).await;
    let b = session_for(&nodes[1].url, &mesh.peers[0].profile(), SessionMode::Control).await;
    // All due within the same second, a few seconds out; created through both nodes.
    let due = (now_ms() / 1000 + 6) * 1000;
    let creates = (0..1000).map(|i| {
        let s = if i % 2 == 0 { &a } else { &b };
        let req = to_self(s, &pk, Schedule::At { at_ms: due + (i % 1000) }, &format!("r{i}"));
        async move { s.conn.call(&req).await }
    });
    for r in futures_util::future::join_all(creates).await {
        r.expect("created");
    }
    let fired = wait_until_async(T, || async {
        (count(&db, "SELECT count(*) FROM reminders WHERE next_fire_at IS NULL").await == 1000).then_some(())
    })
    .await;
    assert!(fired.is_some(), "not all fired");
    assert_eq!(count(&db, "SELECT count(*) FROM reminders WHERE fire_count <> 1").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM events WHERE subtype = 'reminder'").await, 1000);
    assert_eq!(count(&db, "SELECT count(DISTINCT id) FROM events WHERE subtype = 'reminder'").await, 1000);
    // Every delivery is a message from ana to ana's member, never before its time.
    let early = count(
        &db,
        &format!(
            "SELECT count(*) FROM events WHERE subtype = 'reminder' AND created_at < to_timestamp({due} / 1000.0)"
        ),
    )
    .await;
    assert_eq!(early, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owning_node_killed_just_before_the_due_time_still_fires_it_once() {
    let db = TestDb::create().await;
    let mut env = cluster_env();
    env.push(("PLEXUS_REDIS__NODE_TTL_SECS".into(), "2".into()));
    env.push(("PLEXUS_COORDINATION__REMINDER_CLAIM_INTERVAL_MS".into(), "200".into()));
    let mut nodes = Vec::new();
    for id in ["n0", "n1"] {
        let mut e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        e.push(("PLEXUS_NODE__ID", id));
        nodes.push(Broker::start_with(&db, &e).await);
    }
    let mesh = Mesh::create(&nodes[0], &["ana"]).await;
    let pk = member_pubkey(&mesh, 0);
    let s = session_for(&nodes[0].url, &mesh.peers[0].profile(), SessionMode::Control).await;
    let due = now_ms() + 5000;
    let r = s.conn.call(&to_self(&s, &pk, Schedule::At { at_ms: due }, "deploy window opens")).await.unwrap();
    drop(s);
    // Wait until a node's actor owns it, then kill that node a second before it is due.
    let owner = wait_until_async(T, || async {
        let sql = format!("SELECT CASE owner_node WHEN 'n0' THEN 0 WHEN 'n1' THEN 1 ELSE -1 END::bigint FROM reminders WHERE number = {}", r.number);
        let o = count(&db, &sql).await;
        (o >= 0).then_some(o as usize)
    })
    .await
    .expect("claimed");
    let wait = Duration::from_millis(due.saturating_sub(now_ms()).saturating_sub(1000));
    tokio::time::sleep(wait).await;
    nodes[owner].kill9();
    let fired =
        wait_until_async(T, || async { (count(&db, "SELECT fire_count FROM reminders").await >= 1).then_some(()) })
            .await;
    assert!(fired.is_some(), "the survivor never fired it");
    // Give a second firing every chance to happen, then check there was none.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&db, "SELECT count(*) FROM events WHERE subtype = 'reminder'").await, 1);
    assert_eq!(count(&db, "SELECT fire_count FROM reminders").await, 1);
    let survivor = if owner == 0 { "n1" } else { "n0" };
    let sql = format!("SELECT count(*) FROM reminders WHERE owner_node = '{survivor}'");
    assert_eq!(count(&db, &sql).await, 1, "taken over by the survivor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_reminder_resumes_after_downtime_with_one_catch_up() {
    let db = TestDb::create().await;
    let mut node = Broker::start_with(&db, &[("PLEXUS_COORDINATION__REMINDER_CLAIM_INTERVAL_MS", "200")]).await;
    let mesh = Mesh::create(&node, &["ana"]).await;
    let pk = member_pubkey(&mesh, 0);
    let s = session_for(&node.url, &mesh.peers[0].profile(), SessionMode::Control).await;
    // Every 3 seconds (six-field cron: seconds first).
    let every3 = Schedule::Cron { expr: "*/3 * * * * *".into(), tz: "UTC".into() };
    s.conn.call(&to_self(&s, &pk, every3, "heartbeat")).await.unwrap();
    drop(s);
    let fires = || count(&db, "SELECT count(*) FROM events WHERE subtype = 'reminder'");
    assert!(wait_until_async(T, || async { (fires().await >= 2).then_some(()) }).await.is_some());

    node.kill9();
    let before = fires().await;
    // Down across three or more due slots.
    tokio::time::sleep(Duration::from_secs(10)).await;
    node.restart().await;
    let caught_up = wait_until_async(T, || async {
        let n = fires().await;
        (n > before).then_some(n)
    })
    .await
    .expect("fired after the restart");
    // Within the next 2.5 s at most one regular slot can come due. Firing once per missed slot
    // would have added three or more at once.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = fires().await;
    assert!(caught_up - before == 1, "catch-up fired {} times", caught_up - before);
    assert!(after - before <= 2, "{} firings right after the restart", after - before);
    // And it keeps going on schedule.
    assert!(wait_until_async(T, || async { (fires().await >= after + 2).then_some(()) }).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schedules_are_refused_and_only_creators_or_admins_cancel() {
    let db = TestDb::create().await;
    let node = Broker::start(&db).await;
    let mesh = Mesh::create(&node, &["ana", "bo"]).await;
    let (ana, bo) = (&mesh.peers[0], &mesh.peers[1]);
    for (args, want) in [
        (vec!["remind", "add", "x", "--cron", "61 * * * *"], "invalid cron"),
        (
            vec!["remind", "add", "x", "--cron", "0 9 * * *", "--tz", "Mars/Olympus"],
            "unknown time zone \"Mars/Olympus\"",
        ),
        (vec!["remind", "add", "x", "--at", "2020-01-01T00:00:00Z"], "in the past"),
        (vec!["remind", "add", "x"], "exactly one of --in, --at or --cron"),
    ] {
        let out = ana.run(&args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    assert_eq!(ana.json(&["remind", "list"])["reminders"].as_array().unwrap().len(), 0);

    let r = bo.json(&["remind", "add", "check the build", "--in", "1h", "--to", "ana"]);
    let n = r["number"].as_u64().unwrap().to_string();
    // ana (owner, an admin) may cancel bo's; a member may not cancel someone else's.
    let mine = ana.json(&["remind", "add", "ana's own", "--in", "1h"]);
    let out = bo.run(&["remind", "cancel", &mine["number"].as_u64().unwrap().to_string()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("only its creator or an admin"));
    assert_eq!(ana.json(&["remind", "cancel", &n])["cancelled"], true);
    let out = ana.run(&["remind", "cancel", &n]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already cancelled"));
    let listed = ana.json(&["remind", "list", "--all"]);
    let left: Vec<u64> =
        listed["reminders"].as_array().unwrap().iter().map(|r| r["number"].as_u64().unwrap()).collect();
    assert_eq!(left, [mine["number"].as_u64().unwrap()]);
    // The body is sealed and no label was given: the broker holds no text of it.
    assert!(listed["reminders"][0]["label"].is_null(), "{listed}");
    assert_eq!(db.scalar_i64("SELECT count(*) FROM reminders WHERE label IS NOT NULL").await, 0);

    // A protocol-level past `at` is refused the same way.
    let s = session_for(&node.url, &ana.profile(), SessionMode::Control).await;
    let pk = member_pubkey(&mesh, 0);
    let r = s.conn.call(&to_self(&s, &pk, Schedule::At { at_ms: 1000 }, "late")).await;
    assert!(matches!(r, Err(ClientError::Remote { code: ErrorCode::InvalidField, .. })), "{r:?}");
}
