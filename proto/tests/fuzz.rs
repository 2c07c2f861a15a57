//! Property tests: the decoders never panic on arbitrary bytes, and every op body round-trips.

use plexus_proto::{decode_body, decode_request, decode_server_frame, encode_body, limits, ops, types::*};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_request(&bytes);
        let _ = decode_server_frame(&bytes);
        let _ = decode_body::<ops::Hello>("hello", &bytes);
        let _ = decode_body::<ops::Send>("send", &bytes);
        let _ = decode_body::<ops::Ack>("ack", &bytes);
        let _ = decode_body::<plexus_proto::push::Message>("message", &bytes);
    }

    #[test]
    fn mutated_valid_frames_never_panic(flip in 0usize..64, byte in any::<u8>()) {
        let send = ops::Send {
            id: uuid::Uuid::from_u128(9),
            target: Target::Group("a/b".into()),
            priority: Priority::Low,
            reply_to: None,
            subtype: Some("reminder".into()),
            sealing: Sealing::MeshKey,
            nonce: vec![7; 24],
            ciphertext: vec![1; 40],
        };
        let mut bytes = encode_body(&send).unwrap();
        let i = flip % bytes.len();
        bytes[i] = byte;
        if let Ok(s) = decode_body::<ops::Send>("send", &bytes) {
            let _ = plexus_proto::Op::validate(&s);
        }
    }

    #[test]
    fn group_names_with_any_text_are_checked_not_trusted(name in ".{0,80}") {
        let ok = valid_group_name(&name);
        if ok {
            prop_assert!(name.len() <= limits::MAX_GROUP_NAME);
            prop_assert!(!name.contains(' ') && !name.contains('%') && !name.contains('\''));
        }
    }
}

#[test]
fn oversize_frame_is_a_typed_error() {
    let big = vec![0u8; limits::MAX_FRAME_BYTES + 1];
    let e = decode_request(&big).unwrap_err();
    assert_eq!(e.code(), plexus_proto::ErrorCode::FrameTooLarge);
}

#[test]
fn oversize_ciphertext_fails_validation() {
    let send = ops::Send {
        id: uuid::Uuid::nil(),
        target: Target::All,
        priority: Priority::Now,
        reply_to: None,
        subtype: None,
        sealing: Sealing::MeshKey,
        nonce: vec![0; 24],
        ciphertext: vec![0; limits::MAX_CIPHERTEXT_BYTES + 1],
    };
    assert_eq!(plexus_proto::Op::validate(&send).unwrap_err().code(), plexus_proto::ErrorCode::InvalidField);
}
