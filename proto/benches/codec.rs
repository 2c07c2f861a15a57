//! Codec micro-benchmarks: encoding and decoding the hot frames (a send request and a
//! message push). Run: `cargo bench -p plexus-proto`.

use criterion::{criterion_group, criterion_main, Criterion};
use plexus_proto::{
    decode_body, decode_request, encode_body, encode_request, encode_server_frame, ops,
    push::Message,
    types::{Priority, Sealing, Target},
    Push, Request, ServerFrame,
};
use std::hint::black_box;
use uuid::Uuid;

fn send_body() -> ops::Send {
    ops::Send {
        id: Uuid::from_u128(42),
        target: Target::Member(Uuid::from_u128(7)),
        priority: Priority::Next,
        reply_to: None,
        subtype: None,
        sealing: Sealing::BoxMember,
        nonce: vec![3; 24],
        ciphertext: vec![9; 256],
    }
}

fn message() -> Message {
    Message {
        seq: 123_456,
        id: Uuid::from_u128(42),
        sender_member: Uuid::from_u128(1),
        sender_session: Uuid::from_u128(2),
        sender_name: "alice".into(),
        sender_pubkey: vec![1; 32],
        sender_member_pubkey: vec![2; 32],
        target: Target::All,
        priority: Priority::Now,
        reply_to: None,
        subtype: None,
        sealing: Sealing::MeshKey,
        nonce: vec![3; 24],
        ciphertext: vec![9; 256],
        sent_at_ms: 1_700_000_000_000,
    }
}

fn codec(c: &mut Criterion) {
    let req = Request { v: 1, id: 9, op: "send".into(), body: encode_body(&send_body()).unwrap() };
    let req_bytes = encode_request(&req).unwrap();
    c.bench_function("encode send request", |b| {
        b.iter(|| {
            let body = encode_body(black_box(&send_body())).unwrap();
            encode_request(&Request { v: 1, id: 9, op: "send".into(), body }).unwrap()
        });
    });
    c.bench_function("decode send request", |b| {
        b.iter(|| {
            let r = decode_request(black_box(&req_bytes)).unwrap();
            decode_body::<ops::Send>("send", &r.body).unwrap()
        });
    });
    let msg = message();
    c.bench_function("encode message push", |b| {
        b.iter(|| {
            let body = encode_body(black_box(&msg)).unwrap();
            encode_server_frame(&ServerFrame::Push(Push { push: "message".into(), body })).unwrap()
        });
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
