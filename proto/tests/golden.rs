//! Golden bytes: these encodings are the wire format. If one of these tests fails, the change
//! breaks every deployed peer; add a field with `#[serde(default)]` instead.

use plexus_proto::{
    decode_body, decode_request, decode_server_frame, encode_body, encode_request, encode_server_frame,
    ops::{self, Op},
    push::{self, PushBody},
    types::{Cursor, Priority, Sealing, Target},
    ErrorCode, Push, Request, Response, ServerFrame,
};
use uuid::Uuid;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn request_envelope_bytes() {
    let req = Request { v: 1, id: 7, op: "peers".into(), body: vec![0x80] };
    let bytes = encode_request(&req).unwrap();
    assert_eq!(hex(&bytes), "84a17601a2696407a26f70a57065657273a4626f6479c40180");
    assert_eq!(decode_request(&bytes).unwrap(), req);
}

#[test]
fn response_and_push_bytes() {
    let ok = ServerFrame::Response(Response { id: 7, ok: Some(vec![0x80]), err: None });
    assert_eq!(hex(&encode_server_frame(&ok).unwrap()), "81a372657383a2696407a26f6bc40180a3657272c0");
    let err = ServerFrame::Response(Response::err(3, ErrorCode::UnknownOp, "unknown op x"));
    let bytes = encode_server_frame(&err).unwrap();
    assert_eq!(
        hex(&bytes),
        "81a372657383a2696403a26f6bc0a365727282a4636f646504a76d657373616765ac756e6b6e6f776e206f702078"
    );
    assert_eq!(decode_server_frame(&bytes).unwrap(), err);
    let push = ServerFrame::Push(Push { push: "digest".into(), body: vec![0x80] });
    assert_eq!(hex(&encode_server_frame(&push).unwrap()), "81a47075736882a470757368a6646967657374a4626f6479c40180");
}

#[test]
fn send_body_bytes() {
    let send = ops::Send {
        id: Uuid::from_u128(1),
        target: Target::Group("eng".into()),
        priority: Priority::Now,
        reply_to: None,
        subtype: None,
        sealing: Sealing::MeshKey,
        nonce: vec![0; 24],
        ciphertext: vec![1, 2, 3],
    };
    let bytes = encode_body(&send).unwrap();
    assert_eq!(
        hex(&bytes),
        "88a26964c41000000000000000000000000000000001a6746172676574\
         81a567726f7570a3656e67a87072696f72697479a36e6f77a87265706c795f746fc0a7737562747970\
         65c0a77365616c696e67a86d6573685f6b6579a56e6f6e6365c418000000000000000000000000000000\
         000000000000000000aa63697068657274657874c403010203"
    );
    assert_eq!(decode_body::<ops::Send>(ops::Send::NAME, &bytes).unwrap(), send);
    let all = encode_body(&Target::All).unwrap();
    assert_eq!(hex(&all), "a3616c6c");
}

#[test]
fn cursor_and_digest_bytes() {
    let c = Cursor { watermark: 10, acked: vec![12] };
    assert_eq!(hex(&encode_body(&c).unwrap()), "82a977617465726d61726b0aa561636b6564910c");
    let d = push::Digest { low_unread: 2, senders: vec!["a".into()] };
    assert_eq!(hex(&encode_body(&d).unwrap()), "82aa6c6f775f756e7265616402a773656e6465727391a161");
    assert_eq!(push::Digest::KIND, "digest");
}

#[test]
fn unknown_fields_are_ignored_and_missing_defaults_apply() {
    // An Inbox body from a newer peer with an extra field, and one with no fields at all.
    #[derive(serde::Serialize)]
    struct Newer {
        limit: u32,
        extra: &'static str,
    }
    let bytes = encode_body(&Newer { limit: 5, extra: "x" }).unwrap();
    assert_eq!(decode_body::<ops::Inbox>("inbox", &bytes).unwrap().limit, 5);
    let empty = encode_body(&std::collections::BTreeMap::<String, u8>::new()).unwrap();
    assert_eq!(decode_body::<ops::Inbox>("inbox", &empty).unwrap().limit, 100);
}

#[test]
fn error_codes_are_stable() {
    let pairs = [
        (ErrorCode::BadFrame, 1u16),
        (ErrorCode::FrameTooLarge, 2),
        (ErrorCode::UnsupportedVersion, 3),
        (ErrorCode::UnknownOp, 4),
        (ErrorCode::BadBody, 5),
        (ErrorCode::InvalidField, 6),
        (ErrorCode::NotAuthenticated, 10),
        (ErrorCode::BadSignature, 12),
        (ErrorCode::ReplayedNonce, 14),
        (ErrorCode::NotMember, 16),
        (ErrorCode::InviteExhausted, 24),
        (ErrorCode::Internal, 30),
    ];
    for (code, n) in pairs {
        assert_eq!(u16::from(code), n);
        assert_eq!(ErrorCode::from(n), code);
    }
    assert_eq!(ErrorCode::from(999), ErrorCode::Unknown(999));
}
