//! One test suite for both implementations of each cluster seam: in-memory (single node) and
//! Redis (real server, unique key prefix per test). Two Redis-backed instances with different
//! node ids play two nodes.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use plexus_broker::cluster::{
    memory::{MemoryFanOut, MemoryPresence},
    redis::{connect, RedisFanOut, RedisPresence},
    FanOut, Liveness, MeshEvent, PresenceDirectory, SingleNode,
};
use plexus_e2e::wait_until;
use plexus_proto::types::{PeerInfo, SessionProfile, Status, StatusSource};
use uuid::Uuid;

fn redis_url() -> String {
    std::env::var("PLEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:56379/0".into())
}

fn prefix() -> String {
    format!("plexus-test:{}:", Uuid::new_v4().simple())
}

fn peer(name: &str) -> PeerInfo {
    PeerInfo {
        session_id: Uuid::new_v4(),
        member_id: Uuid::new_v4(),
        display_name: name.into(),
        session_pubkey: vec![1; 32],
        status: Status::Idle,
        status_source: StatusSource::Manual,
        status_since_ms: 0,
        profile: SessionProfile::default(),
        connected_at_ms: 0,
    }
}

type Seen = Arc<Mutex<Vec<Uuid>>>;

fn recorder() -> (Seen, plexus_broker::cluster::EventSink) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let sink: plexus_broker::cluster::EventSink = Arc::new(move |ev| {
        if let MeshEvent::MemberRemoved { member_id } = ev {
            s.lock().unwrap().push(member_id);
        }
    });
    (seen, sink)
}

/// `publisher` and `subscriber` are two nodes (or one node twice for the memory version).
async fn fanout_suite(publisher: &dyn FanOut, subscriber: &dyn FanOut) {
    let mesh = Uuid::new_v4();
    let (seen, sink) = recorder();
    subscriber.subscribe(mesh, sink);
    // A subscription is established asynchronously in Redis; publish until the first arrives.
    let first = Uuid::new_v4();
    assert!(
        wait_until(Duration::from_secs(10), || {
            publisher.publish(mesh, MeshEvent::MemberRemoved { member_id: first });
            (!seen.lock().unwrap().is_empty()).then_some(())
        })
        .await
        .is_some(),
        "subscriber never received an event"
    );
    seen.lock().unwrap().clear();
    let ids: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        publisher.publish(mesh, MeshEvent::MemberRemoved { member_id: *id });
    }
    assert!(wait_until(Duration::from_secs(10), || (seen.lock().unwrap().len() >= 200).then_some(())).await.is_some());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got: Vec<Uuid> = seen.lock().unwrap().iter().copied().filter(|i| *i != first).collect();
    assert_eq!(got, ids, "events lost, doubled or reordered");

    // Another mesh's events do not arrive; after unsubscribing nothing arrives.
    publisher.publish(Uuid::new_v4(), MeshEvent::MemberRemoved { member_id: Uuid::new_v4() });
    subscriber.unsubscribe(mesh);
    tokio::time::sleep(Duration::from_millis(200)).await;
    seen.lock().unwrap().clear();
    publisher.publish(mesh, MeshEvent::MemberRemoved { member_id: Uuid::new_v4() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(seen.lock().unwrap().is_empty(), "received after unsubscribe");
}

async fn presence_suite(a: &dyn PresenceDirectory, b: &dyn PresenceDirectory) {
    let mesh = Uuid::new_v4();
    let p1 = peer("ann");
    let p2 = peer("bo");
    assert_eq!(a.upsert(mesh, p1.clone()).await, None, "first upsert is new");
    let mut changed = p1.clone();
    changed.status = Status::Working;
    assert_eq!(a.upsert(mesh, changed).await, Some(p1.clone()), "an upsert returns what it replaced");
    a.upsert(mesh, p1.clone()).await;
    assert_eq!(b.upsert(mesh, p2.clone()).await, None);
    let listed = b.list(mesh).await;
    assert_eq!(listed, vec![p1.clone(), p2.clone()], "both nodes see both sessions, sorted by name");
    assert!(b.remove(mesh, p2.session_id).await, "the owning node removes");
    assert!(!b.remove(mesh, p2.session_id).await, "a leave happens once");
    assert_eq!(a.list(mesh).await, vec![p1]);
    assert!(b.list(Uuid::new_v4()).await.is_empty());
}

#[tokio::test]
async fn memory_fanout() {
    let f = MemoryFanOut::default();
    fanout_suite(&f, &f).await;
}

#[tokio::test]
async fn memory_presence() {
    let p = MemoryPresence::default();
    presence_suite(&p, &p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_fanout_between_two_nodes() {
    let prefix = prefix();
    let (ca, a) = connect(&redis_url()).await.expect("redis for tests (run scripts/test.sh)");
    let (cb, b) = connect(&redis_url()).await.unwrap();
    let na = RedisFanOut::start(ca, a, "node-a".into(), prefix.clone());
    let nb = RedisFanOut::start(cb, b, "node-b".into(), prefix);
    fanout_suite(&na, &nb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_fanout_delivers_own_events_locally_once() {
    let prefix = prefix();
    let (c, conn) = connect(&redis_url()).await.unwrap();
    let node = RedisFanOut::start(c, conn, "solo".into(), prefix);
    fanout_suite(&node, &node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_presence_shared_by_two_nodes() {
    let prefix = prefix();
    let (_, a) = connect(&redis_url()).await.unwrap();
    let (_, b) = connect(&redis_url()).await.unwrap();
    presence_suite(&RedisPresence::new(a, prefix.clone(), "a".into()), &RedisPresence::new(b, prefix, "b".into()))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_presence_only_the_owning_node_removes_and_dead_nodes_are_reaped_once() {
    let prefix = prefix();
    let (_, a) = connect(&redis_url()).await.unwrap();
    let (_, b) = connect(&redis_url()).await.unwrap();
    let (_, c) = connect(&redis_url()).await.unwrap();
    let na = RedisPresence::new(a, prefix.clone(), "a".into());
    let nb = RedisPresence::new(b, prefix.clone(), "b".into());
    let nc = RedisPresence::new(c, prefix, "c".into());
    let ttl = Duration::from_millis(300);
    for n in [&na, &nb, &nc] {
        n.heartbeat(ttl).await.unwrap();
    }
    let mesh = Uuid::new_v4();
    let moved = peer("moved");
    assert!(na.upsert(mesh, moved.clone()).await.is_none());
    // The session reconnects to b before a notices; a's late cleanup must not remove it.
    assert!(nb.upsert(mesh, moved.clone()).await.is_some(), "a session that moved is not new");
    assert!(!na.remove(mesh, moved.session_id).await);
    assert_eq!(nc.list(mesh).await.len(), 1);

    let stays = peer("stays-on-a");
    assert!(na.upsert(mesh, stays.clone()).await.is_none());
    assert_eq!(nb.live_nodes().await.unwrap(), 3);
    let mut live = Liveness::live_node_ids(&nc).await.expect("redis answers");
    live.sort();
    assert_eq!(live, ["a", "b", "c"]);
    // a dies (stops heartbeating); b and c both try to reap.
    tokio::time::sleep(Duration::from_millis(450)).await;
    nb.heartbeat(ttl).await.unwrap();
    nc.heartbeat(ttl).await.unwrap();
    let (rb, rc) = tokio::join!(nb.reap_dead_nodes(), nc.reap_dead_nodes());
    let mut gone: Vec<Uuid> = rb.unwrap().into_iter().chain(rc.unwrap()).map(|(_, p)| p.session_id).collect();
    gone.sort();
    assert_eq!(gone, vec![stays.session_id], "exactly one leave, and only for the session still on a");
    assert_eq!(nb.list(mesh).await, vec![moved]);
    assert_eq!(nb.live_nodes().await.unwrap(), 2);
    let mut live = Liveness::live_node_ids(&na).await.expect("redis answers");
    live.sort();
    assert_eq!(live, ["b", "c"], "a dead node is not live to anyone, itself included");
}

#[tokio::test]
async fn a_single_node_is_the_whole_cluster() {
    assert_eq!(SingleNode("solo".into()).live_node_ids().await, Some(vec!["solo".to_owned()]));
}
