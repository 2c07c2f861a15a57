//! Every example frame in `docs/protocol.md` decodes into its documented type, reads as the
//! JSON shown beside it, and encodes back to exactly its bytes — so a client written from the
//! document alone speaks the real protocol.
//!
//! An example is an HTML comment `<!-- example: request hello -->` (or `response hello`,
//! `push message`), then a ```json block (binaries shown as hex strings) and a ```hex block.
//! `PLEXUS_PRINT_DOC_EXAMPLES=1 cargo test -p plexus-proto --test doc_examples -- --nocapture`
//! prints the examples built below, for pasting after a deliberate change.

use plexus_proto::{
    coord::{LockAcquire, LockMode},
    decode_body, decode_request, decode_server_frame, encode_body, encode_request, encode_server_frame,
    ops::{self, Op},
    push::{self, PushBody},
    types::{
        Cursor, GroupRole, PeerInfo, Priority, Role, Sealing, SessionMode, SessionProfile, Status, StatusSource, Target,
    },
    Push, Request, Response, ServerFrame,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use uuid::Uuid;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(char::is_ascii_hexdigit).collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// Byte strings as hex in the JSON view (arrays of at least 12 small integers).
fn normalize(v: Value) -> Value {
    match v {
        Value::Array(items) => {
            let bytes: Option<Vec<u8>> =
                items.iter().map(|x| x.as_u64().filter(|n| *n <= 255).map(|n| n as u8)).collect();
            match bytes {
                Some(b) if b.len() >= 12 => Value::String(format!("0x{}", hex(&b))),
                _ => Value::Array(items.into_iter().map(normalize).collect()),
            }
        }
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, normalize(v))).collect()),
        other => other,
    }
}

fn json_of<T: Serialize>(t: &T) -> Value {
    normalize(serde_json::to_value(t).expect("json"))
}

fn typed<T: Serialize + DeserializeOwned>(name: &str, body: &[u8]) -> Value {
    let t: T = decode_body(name, body).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(encode_body(&t).unwrap(), body, "{name}: the body does not re-encode to its bytes");
    json_of(&t)
}

fn request_body(op: &str, body: &[u8]) -> Value {
    match op {
        ops::Hello::NAME => typed::<ops::Hello>(op, body),
        ops::Send::NAME => typed::<ops::Send>(op, body),
        ops::Ack::NAME => typed::<ops::Ack>(op, body),
        ops::SetStatus::NAME => typed::<ops::SetStatus>(op, body),
        LockAcquire::NAME => typed::<LockAcquire>(op, body),
        other => panic!("no example decoder for request {other}"),
    }
}

fn reply_body(op: &str, body: &[u8]) -> Value {
    match op {
        ops::Hello::NAME => typed::<<ops::Hello as Op>::Reply>(op, body),
        ops::Send::NAME => typed::<<ops::Send as Op>::Reply>(op, body),
        ops::Ack::NAME => typed::<<ops::Ack as Op>::Reply>(op, body),
        ops::Peers::NAME => typed::<<ops::Peers as Op>::Reply>(op, body),
        other => panic!("no example decoder for reply {other}"),
    }
}

fn push_body(kind: &str, body: &[u8]) -> Value {
    match kind {
        push::Message::KIND => typed::<push::Message>(kind, body),
        push::PeerEvent::KIND => typed::<push::PeerEvent>(kind, body),
        push::Digest::KIND => typed::<push::Digest>(kind, body),
        push::MeshKey::KIND => typed::<push::MeshKey>(kind, body),
        other => panic!("no example decoder for push {other}"),
    }
}

/// The JSON view of an example frame, checking it re-encodes exactly.
fn view(kind: &str, name: &str, bytes: &[u8]) -> Value {
    match kind {
        "request" => {
            let req = decode_request(bytes).expect("request");
            assert_eq!(req.op, name);
            assert_eq!(encode_request(&req).unwrap(), bytes);
            serde_json::json!({"v": req.v, "id": req.id, "op": req.op, "body": request_body(name, &req.body)})
        }
        "response" => {
            let frame = decode_server_frame(bytes).expect("frame");
            assert_eq!(encode_server_frame(&frame).unwrap(), bytes);
            let ServerFrame::Response(r) = frame else { panic!("not a response") };
            serde_json::json!({"res": {
                "id": r.id,
                "ok": r.ok.as_deref().map(|b| reply_body(name, b)),
                "err": r.err.map(|e| serde_json::json!({"code": u16::from(e.code), "message": e.message})),
            }})
        }
        "push" => {
            let frame = decode_server_frame(bytes).expect("frame");
            assert_eq!(encode_server_frame(&frame).unwrap(), bytes);
            let ServerFrame::Push(p) = frame else { panic!("not a push") };
            assert_eq!(p.push, name);
            serde_json::json!({"push": {"push": p.push, "body": push_body(name, &p.body)}})
        }
        other => panic!("unknown example kind {other}"),
    }
}

struct Example {
    kind: String,
    name: String,
    json: String,
    hex: String,
}

fn examples(doc: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(at) = rest.find("<!-- example: ") {
        rest = &rest[at + 14..];
        let end = rest.find("-->").expect("example marker ends");
        let mut words = rest[..end].split_whitespace();
        let (kind, name) = (words.next().expect("kind").to_owned(), words.next().expect("name").to_owned());
        let block = |rest: &str, lang: &str| -> (String, usize) {
            let open = rest.find(&format!("```{lang}\n")).unwrap_or_else(|| panic!("{kind} {name}: no {lang} block"));
            let body = &rest[open + lang.len() + 4..];
            let close = body.find("```").expect("block closes");
            (body[..close].to_owned(), open + lang.len() + 4 + close + 3)
        };
        let (json, used) = block(rest, "json");
        let (hex, used2) = block(&rest[used..], "hex");
        out.push(Example { kind, name, json, hex });
        rest = &rest[used + used2..];
    }
    out
}

#[test]
fn every_documented_example_decodes_to_what_the_document_says() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md")).expect("doc");
    let found = examples(&doc);
    assert!(found.len() >= 8, "the protocol document lost its examples");
    for ex in found {
        let bytes = unhex(&ex.hex);
        let got = view(&ex.kind, &ex.name, &bytes);
        let want: Value = serde_json::from_str(&ex.json)
            .unwrap_or_else(|e| panic!("{} {}: bad JSON in the doc: {e}", ex.kind, ex.name));
        assert_eq!(got, want, "{} {}: the bytes decode to something else than the JSON shown", ex.kind, ex.name);
    }
}

/// The values behind the documented examples (printed on request, see the module doc).
fn built() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mesh = Uuid::from_u128(0x0a0a);
    let member = Uuid::from_u128(0x0b0b);
    let session = Uuid::from_u128(0x0c0c);
    let req = |id: u64, op: &str, body: Vec<u8>| encode_request(&Request { v: 1, id, op: op.into(), body }).unwrap();
    let hello = ops::Hello {
        mesh_id: mesh,
        member_id: member,
        session_id: session,
        session_pubkey: vec![0x11; 32],
        timestamp_ms: 1_764_547_200_000,
        nonce: vec![0x22; 16],
        signature: vec![0x33; 64],
        mode: SessionMode::Session,
        cursor: Some(Cursor { watermark: 41, acked: vec![43, 44] }),
        profile: SessionProfile {
            display_name: Some("ana".into()),
            status: Status::Idle,
            summary: Some("reviewing the parser".into()),
            groups: vec![GroupRole { name: "eng/backend".into(), role: Some("lead".into()) }],
            visible: true,
            cwd: Some("/home/ana/plexus".into()),
            host: Some("ana-laptop".into()),
            agent_kind: Some("claude-code".into()),
            agent_model: None,
            agent_pid: Some(4242),
            pull_only: false,
        },
    };
    let welcome = ops::Welcome {
        mesh_name: "team".into(),
        role: Role::Member,
        display_name: "ana".into(),
        head_seq: 57,
        cursor: Cursor { watermark: 41, acked: vec![] },
        sealed_mesh_key: None,
        node_id: "node-1".into(),
        server_time_ms: 1_764_547_200_012,
        key_commitment: Some(vec![0x44; 32]),
        key_commitment_signature: Some(vec![0x55; 64]),
        owner_pubkey: Some(vec![0x66; 32]),
        key_epoch: 0,
        key_rotation_due: false,
    };
    let send = ops::Send {
        id: Uuid::from_u128(0x0d0d),
        target: Target::Member(Uuid::from_u128(0x0e0e)),
        priority: Priority::Now,
        reply_to: None,
        subtype: None,
        sealing: Sealing::BoxMember,
        nonce: vec![0x77; 24],
        ciphertext: vec![0x88; 21],
    };
    let message = push::Message {
        seq: 58,
        id: Uuid::from_u128(0x0d0d),
        sender_member: member,
        sender_session: session,
        sender_name: "ana".into(),
        sender_pubkey: vec![0x11; 32],
        sender_member_pubkey: vec![0x99; 32],
        target: Target::Group("eng".into()),
        priority: Priority::Next,
        reply_to: None,
        subtype: None,
        sealing: Sealing::MeshKey,
        nonce: vec![0x77; 24],
        ciphertext: vec![0x88; 21],
        sent_at_ms: 1_764_547_201_000,
    };
    let peer = push::PeerEvent {
        change: push::PeerChange::Joined,
        peer: PeerInfo {
            session_id: session,
            member_id: member,
            display_name: "ana".into(),
            session_pubkey: vec![0x11; 32],
            status: Status::Working,
            status_source: StatusSource::Hook,
            status_since_ms: 1_764_547_200_500,
            profile: SessionProfile { summary: Some("reviewing the parser".into()), ..SessionProfile::default() },
            connected_at_ms: 1_764_547_200_010,
        },
    };
    let res = |id: u64, ok: Option<Vec<u8>>, err: Option<(plexus_proto::ErrorCode, &str)>| {
        encode_server_frame(&ServerFrame::Response(match err {
            Some((code, m)) => Response::err(id, code, m),
            None => Response { id, ok, err: None },
        }))
        .unwrap()
    };
    let push_frame =
        |kind: &str, body: Vec<u8>| encode_server_frame(&ServerFrame::Push(Push { push: kind.into(), body })).unwrap();
    vec![
        ("request", "hello", req(1, "hello", encode_body(&hello).unwrap())),
        ("response", "hello", res(1, Some(encode_body(&welcome).unwrap()), None)),
        ("request", "send", req(2, "send", encode_body(&send).unwrap())),
        ("response", "send", res(2, Some(encode_body(&ops::Sent { seq: 58, duplicate: false }).unwrap()), None)),
        ("request", "ack", req(3, "ack", encode_body(&ops::Ack { seqs: vec![58], read: false }).unwrap())),
        (
            "response",
            "ack",
            res(3, Some(encode_body(&ops::Acked { cursor: Cursor { watermark: 58, acked: vec![] } }).unwrap()), None),
        ),
        (
            "request",
            "lock_acquire",
            req(
                4,
                "lock_acquire",
                encode_body(&LockAcquire {
                    pattern: "src/auth/**".into(),
                    mode: LockMode::Exclusive,
                    ttl_ms: 300_000,
                    wait_ms: 0,
                    reason: Some("auth refactor".into()),
                })
                .unwrap(),
            ),
        ),
        ("response", "peers", res(5, None, Some((plexus_proto::ErrorCode::NotAuthenticated, "hello first")))),
        ("push", "message", push_frame("message", encode_body(&message).unwrap())),
        ("push", "peer", push_frame("peer", encode_body(&peer).unwrap())),
    ]
}

#[test]
fn the_built_examples_are_the_documented_ones() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md")).expect("doc");
    let documented = examples(&doc);
    let print = std::env::var_os("PLEXUS_PRINT_DOC_EXAMPLES").is_some();
    for (kind, name, bytes) in built() {
        if print {
            let json = serde_json::to_string_pretty(&view(kind, name, &bytes)).unwrap();
            let wrapped: Vec<String> =
                hex(&bytes).as_bytes().chunks(96).map(|c| String::from_utf8_lossy(c).into()).collect();
            println!("<!-- example: {kind} {name} -->\n```json\n{json}\n```\n```hex\n{}\n```\n", wrapped.join("\n"));
            continue;
        }
        let doc_bytes = documented
            .iter()
            .find(|e| e.kind == kind && e.name == name)
            .map(|e| unhex(&e.hex))
            .unwrap_or_else(|| panic!("example {kind} {name} is missing from docs/protocol.md"));
        assert_eq!(hex(&doc_bytes), hex(&bytes), "example {kind} {name} differs from what the code encodes");
    }
}

#[test]
fn the_push_table_lists_every_push() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md")).expect("doc");
    let table = doc.split("\n## Pushes\n").nth(1).expect("a Pushes section");
    let table = table.split("\n## ").next().unwrap_or_default();
    let documented: Vec<&str> =
        table.lines().filter_map(|l| l.strip_prefix("| `")).filter_map(|l| l.split('`').next()).collect();
    assert_eq!(documented, push::ALL_PUSHES, "docs/protocol.md's push table and push::ALL_PUSHES differ");
}
