//! A peer that stops reading is disconnected with the typed slow-consumer close code once its
//! bounded outbound queue fills, and the node keeps serving everyone else.

use std::{sync::Arc, time::Duration};

use futures_util::{SinkExt, StreamExt};
use plexus_client::seal::SealTo;
use plexus_e2e::{http_get, session_for, Broker, Mesh, TestDb};
use plexus_proto::{
    encode_body, encode_request, ops,
    types::{SessionMode, SessionProfile, Target},
    Request, PROTOCOL_VERSION,
};
use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_closed_as_slow_consumer() {
    let db = TestDb::create().await;
    // The flood below is deliberate: no send limit should cut it short.
    let unlimited = [
        ("PLEXUS_HTTP__OUTBOUND_QUEUE", "16"),
        ("PLEXUS_LIMITS__SESSION_BURST", "1000000"),
        ("PLEXUS_LIMITS__MEMBER_BURST", "1000000"),
    ];
    let broker = Broker::start_with(&db, &unlimited).await;
    let mesh = Mesh::create(&broker, &["alice", "bob"]).await;
    let (alice, bob) = (mesh.peers[0].profile(), mesh.peers[1].profile());

    // Bob watches through a raw socket and never reads after the hello.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/ws", broker.url)).await.unwrap();
    let key = plexus_crypto::BoxKeypair::generate().unwrap();
    let hello = plexus_client::connection::signed_hello(
        &bob,
        Uuid::new_v4(),
        key.public_key(),
        SessionMode::Watch,
        None,
        SessionProfile::default(),
    )
    .unwrap();
    let frame =
        encode_request(&Request { v: PROTOCOL_VERSION, id: 1, op: "hello".into(), body: encode_body(&hello).unwrap() })
            .unwrap();
    ws.send(Message::Binary(frame.into())).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap() {
            Message::Binary(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected the welcome, got {other:?}"),
        }
    }

    // Alice floods the mesh (pipelined sends from a few tasks).
    let a = Arc::new(session_for(&broker.url, &alice, SessionMode::Control).await);
    let mesh_key = alice.keyring().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (a, mesh_key) = (a.clone(), mesh_key.clone());
        tasks.push(tokio::spawn(async move {
            let body = vec![b'x'; 2048];
            for _ in 0..400 {
                a.send_sealed(Uuid::new_v4(), Target::All, SealTo::Mesh(&mesh_key), &body, None).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    // Reading now: whatever was buffered, then the typed close.
    let mut code = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, ws.next()).await {
        match msg {
            Ok(Message::Close(Some(frame))) => {
                code = Some(frame.code);
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert_eq!(code, Some(CloseCode::Library(4001)), "expected the slow-consumer close");
    let metrics = http_get(broker.port, "/metrics").unwrap().1;
    assert!(metrics.contains("plexus_slow_consumer_disconnects_total 1"), "not counted");
    // Everyone else is still served.
    a.conn.call(&ops::Peers {}).await.unwrap();
}
