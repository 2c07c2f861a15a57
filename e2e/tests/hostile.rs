//! Careless or hostile clients are cut off, not waited on (issue 10): a peer that stops
//! reading while messages flow is disconnected on schedule and counted once; sockets that
//! never say hello, or keep failing it, are closed with 4007; connection limits hold; small
//! protocol answers carry the right error and id.

use std::{sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use plexus_client::{connection::ClientError, seal::SealTo};
use plexus_e2e::{http_get, raw_connect, session_for, wait_until_async, Broker, Mesh, TestDb};
use plexus_proto::{
    encode_body, encode_request, ops,
    types::{SessionMode, SessionProfile, Target},
    ErrorCode, Request, PROTOCOL_VERSION,
};
use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};
use uuid::Uuid;

const T: Duration = Duration::from_secs(30);

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws(url: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("{url}/ws")).await.expect("websocket").0
}

fn hello_frame(profile: &plexus_client::profile::Profile, session_id: Uuid, mode: SessionMode) -> Vec<u8> {
    let key = plexus_crypto::BoxKeypair::generate().unwrap();
    let hello = plexus_client::connection::signed_hello(
        profile,
        session_id,
        key.public_key(),
        mode,
        None,
        SessionProfile::default(),
    )
    .unwrap();
    encode_request(&Request { v: PROTOCOL_VERSION, id: 1, op: "hello".into(), body: encode_body(&hello).unwrap() })
        .unwrap()
}

/// Read until the broker closes; the close code, if it sent one.
async fn close_code(ws: &mut Ws, within: Duration) -> Option<CloseCode> {
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, ws.next()).await {
        match msg {
            Ok(Message::Close(frame)) => return frame.map(|f| f.code),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}

async fn present(s: &plexus_e2e::RawSession, session_id: Uuid) -> bool {
    s.conn.call(&ops::Peers {}).await.map(|p| p.peers.iter().any(|x| x.session_id == session_id)).unwrap_or(true)
}

fn metric(port: u16, name: &str) -> Option<f64> {
    let text = http_get(port, "/metrics")?.1;
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
}

/// Flood `to`'s member from `from` with `size`-byte messages until `stop` is set.
fn flood(
    from: Arc<plexus_e2e::RawSession>,
    to: &plexus_client::profile::Profile,
    size: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    let (member, key) = (to.member_id, to.member_key().unwrap().public_key().to_vec());
    tokio::spawn(async move {
        let body = vec![b'x'; size];
        let mut sent = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let r = from.send_sealed(Uuid::new_v4(), Target::Member(member), SealTo::Member(&key), &body, None).await;
            if r.is_ok() {
                sent += 1;
            }
        }
        sent
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_stops_reading_is_cut_off_while_messages_flow() {
    let db = TestDb::create().await;
    let env = [
        ("PLEXUS_HTTP__OUTBOUND_QUEUE", "16"),
        ("PLEXUS_HTTP__PING_INTERVAL_SECS", "1"),
        ("PLEXUS_HTTP__IDLE_TIMEOUT_SECS", "120"),
    ];
    let broker = Broker::start_with(&db, &env).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let (alice, bob) = (mesh.peers[0].profile(), mesh.peers[1].profile());

    // Bob's session says hello, reads the welcome, then never reads again.
    let bob_session = Uuid::new_v4();
    let mut stuck = ws(&broker.url).await;
    stuck.send(Message::Binary(hello_frame(&bob, bob_session, SessionMode::Session).into())).await.unwrap();
    loop {
        match tokio::time::timeout(T, stuck.next()).await.unwrap().unwrap().unwrap() {
            Message::Binary(_) => break,
            _ => continue,
        }
    }
    let a = Arc::new(session_for(&broker.url, &alice, SessionMode::Control).await);
    assert!(present(&a, bob_session).await);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Large messages fill the socket buffers quickly; the queue then overflows.
    let flooding = flood(a.clone(), &bob, 60_000, stop.clone());
    let gone = wait_until_async(Duration::from_secs(60), || async { (!present(&a, bob_session).await).then_some(()) });
    let gone = gone.await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let sent = flooding.await.unwrap();
    assert!(gone.is_some(), "a peer that stopped reading is still listed after {sent} messages");
    // One connection, counted once, however many pushes it refused.
    assert_eq!(metric(broker.port, "plexus_slow_consumer_disconnects_total"), Some(1.0));
    // Everyone else is still served.
    a.conn.call(&ops::Peers {}).await.unwrap();
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_cli_follower_is_dropped_while_messages_flow() {
    let db = TestDb::create().await;
    let env = [("PLEXUS_HTTP__PING_INTERVAL_SECS", "1"), ("PLEXUS_HTTP__IDLE_TIMEOUT_SECS", "4")];
    let broker = Broker::start_with(&db, &env).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let (alice, bob) = (mesh.peers[0].profile(), mesh.peers[1].profile());
    let follower = mesh.peers[1].spawn_json(&["inbox", "--follow"]);
    let a = Arc::new(session_for(&broker.url, &alice, SessionMode::Control).await);
    let online = wait_until_async(T, || async { present(&a, bob.session_id).await.then_some(()) }).await;
    assert!(online.is_some(), "the follower never came online");
    let stopped = std::process::Command::new("kill").args(["-STOP", &follower.pid().to_string()]).status().unwrap();
    assert!(stopped.success());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooding = flood(a.clone(), &bob, 2048, stop.clone());
    let gone =
        wait_until_async(Duration::from_secs(60), || async { (!present(&a, bob.session_id).await).then_some(()) })
            .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    flooding.await.unwrap();
    let _ = std::process::Command::new("kill").args(["-CONT", &follower.pid().to_string()]).status();
    assert!(gone.is_some(), "a SIGSTOPped follower stayed online while messages flowed");
    drop(follower);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_sockets_are_closed_and_limited() {
    let db = TestDb::create().await;
    let env = [
        ("PLEXUS_HTTP__HELLO_TIMEOUT_SECS", "2"),
        ("PLEXUS_HTTP__MAX_PENDING_HELLOS_PER_ADDRESS", "5"),
        ("PLEXUS_HTTP__MAX_FAILED_HELLOS", "3"),
    ];
    let broker = Broker::start_with(&db, &env).await;
    let mesh = Mesh::create(&broker, &["alice"]).await;
    let alice = mesh.peers[0].profile();

    // Five sockets that never say hello fill the address's allowance; a sixth is refused.
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(ws(&broker.url).await);
    }
    let refused = tokio_tungstenite::connect_async(format!("{}/ws", broker.url)).await;
    assert!(refused.is_err(), "a sixth pending socket was accepted");
    // Each is closed with hello_failed at the deadline.
    for s in &mut silent {
        assert_eq!(close_code(s, T).await, Some(CloseCode::Library(4007)));
    }
    // Failed hellos: the third closes the connection.
    let mut wrong = alice.clone();
    wrong.member_secret = plexus_crypto::hex(plexus_crypto::SigningKey::generate().unwrap().secret_bytes());
    let mut s = ws(&broker.url).await;
    for _ in 0..3 {
        s.send(Message::Binary(hello_frame(&wrong, Uuid::new_v4(), SessionMode::Control).into())).await.unwrap();
    }
    assert_eq!(close_code(&mut s, T).await, Some(CloseCode::Library(4007)));
    // The slots are free again, and a real hello works.
    let ok = wait_until_async(T, || async {
        plexus_e2e::raw_session(&broker.url, &alice, None, SessionMode::Control, None, SessionProfile::default())
            .await
            .ok()
    })
    .await;
    assert!(ok.is_some());
    let text = http_get(broker.port, "/metrics").unwrap().1;
    assert!(text.contains("plexus_hello_failures_total{reason=\"timeout\"} 5"), "{text}");
    assert!(text.contains("plexus_connections_refused_total{limit=\"pending_hellos\"} 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_protocol_answers_carry_the_right_error_and_id() {
    let db = TestDb::create().await;
    let broker = Broker::start(&db).await;
    let one = Mesh::create(&broker, &["alice"]).await;
    let two = Mesh::create(&broker, &["zed", "yan"]).await;
    let a = session_for(&broker.url, &one.peers[0].profile(), SessionMode::Control).await;
    // A grant aimed at another mesh's member is an error, not a silent success.
    let sealed = plexus_crypto::seal_anonymous(&[7u8; 32], &[1u8; 32]).unwrap();
    let r = a
        .conn
        .call(&ops::KeyGrant {
            member_id: two.peers[1].profile().member_id,
            sealed_mesh_key: sealed,
            epoch_keys: vec![],
        })
        .await;
    assert!(matches!(r, Err(ClientError::Remote { code: ErrorCode::NotFound, .. })), "{r:?}");
    // An op name over the limit gets its error with the request's id.
    let conn = raw_connect(&broker).await;
    let long = "x".repeat(40);
    let frame = encode_request(&Request { v: PROTOCOL_VERSION, id: 4242, op: long, body: vec![0x80] }).unwrap();
    let mut raw = ws(&broker.url).await;
    raw.send(Message::Binary(frame.into())).await.unwrap();
    let reply = loop {
        match tokio::time::timeout(T, raw.next()).await.unwrap().unwrap().unwrap() {
            Message::Binary(b) => break plexus_proto::decode_server_frame(&b).unwrap(),
            _ => continue,
        }
    };
    match reply {
        plexus_proto::ServerFrame::Response(r) => {
            assert_eq!(r.id, 4242);
            assert_eq!(r.err.unwrap().code, ErrorCode::InvalidField);
        }
        other => panic!("{other:?}"),
    }
    drop(conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_short_of_file_descriptors_refuses_connections_instead_of_failing_accepts() {
    // 1,112 descriptors: 512 kept for the node itself, two per connection → 300 connections.
    let db = TestDb::create().await;
    let broker = Broker::start_with_open_files(&db, 1_112).await;
    let url = format!("{}/ws", broker.url);
    let (mut open, mut refused) = (Vec::new(), 0);
    for _ in 0..320 {
        match tokio_tungstenite::connect_async(&url).await {
            Ok((socket, _)) => open.push(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 503 => refused += 1,
            Err(e) => panic!("a connection failed instead of being refused: {e}"),
        }
    }
    assert_eq!((open.len(), refused), (300, 20), "admitted vs refused");
    let log = broker.log_text();
    assert!(log.contains("allows fewer connections than http.max_connections"), "no warning in the log");
    assert!(!log.contains("Too many open files"), "accept failed for lack of descriptors");
    // The node is healthy: room frees up as connections close.
    drop(open);
    let admitted = wait_until_async(Duration::from_secs(20), || async {
        tokio_tungstenite::connect_async(&url).await.ok().map(|_| ())
    })
    .await;
    assert!(admitted.is_some(), "no connection admitted after the others closed");
    assert_eq!(http_get(broker.port, "/ready").map(|(s, _)| s), Some(200));
}
