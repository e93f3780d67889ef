//! The fixture log written by format version 1 must decode, event for event, forever.

use girok_schemas::{Payload, decode_event, fixture};

const LOG_V1: &[u8] = include_bytes!("fixtures/log-v1.bin");

#[test]
fn fixture_log_v1_decodes_to_the_frozen_events() {
    let records = fixture::read_records(LOG_V1).expect("fixture file is complete");
    let expected = fixture::fixture_events();
    assert_eq!(records.len(), expected.len());
    for ((seq, bytes), want) in records.iter().zip(&expected) {
        assert_eq!(bytes[0], 1, "written with format byte 1");
        let got = decode_event(bytes).expect("decodes");
        assert_eq!(*seq, got.seq);
        assert_eq!(&got, want);
    }
    // Spot-check literal values, independent of fixture_events(), so that a change to both the
    // generator and the decoder cannot pass unnoticed.
    let third = decode_event(&records[3].1).unwrap();
    assert_eq!(third.id.to_string(), "01900000-0000-7000-8000-000000010004");
    assert_eq!(third.commit_time_ms, 1_767_225_604_000);
    match third.payload {
        Payload::MessageSent {
            body, client_id, ..
        } => {
            assert_eq!(body, "hello, 세계");
            assert_eq!(client_id.as_deref(), Some("a-1"));
        }
        other => panic!("expected a message, got {other:?}"),
    }
    assert_eq!(
        decode_event(&records[5].1).unwrap().type_name(),
        "chat.member.left"
    );
}
