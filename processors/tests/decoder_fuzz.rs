//! Hostile bytes into the alert decoder: random bytes, truncated and
//! bit-flipped real alerts, forged container framing. Every input gives a
//! typed error (or, for a flip that keeps the bytes valid, a candidate) and
//! never a panic — including inside the Avro library, which the decoder
//! reports as `DecoderPanic`, asserted absent here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, OnceLock};

use common::{encode_body, manifest, read_with_apache_avro};
use proptest::prelude::*;
use starlog_processors::decode::{confluent, MemorySchemaRegistry};
use starlog_processors::{AlertDecoder, DecodeError, InputFormat};

struct Fixture {
    /// A few real container files (ZTF 3.1, ZTF 4.01 with history, Rubin 9.0 Spark, Rubin 11.1 sample).
    ocf: Vec<Vec<u8>>,
    /// The same alerts Confluent-framed, ids registered.
    framed: Vec<Vec<u8>>,
    /// A decoder that accepts all three forms.
    decoder: AlertDecoder,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rows = manifest();
        let picks = [
            "fink-alert-simulator",
            "kowalski/20231012/2475433850015015022",
            "fink-broker-rubin/v9_0/169298432645136561",
            "lsst/schema/11/1/sample_data",
        ];
        let registry = Arc::new(MemorySchemaRegistry::new());
        let mut ocf = Vec::new();
        let mut framed = Vec::new();
        let mut bare_schema = None;
        for (i, p) in picks.iter().enumerate() {
            let row = rows.iter().find(|r| r.file().contains(p)).unwrap();
            let (schema, value) = read_with_apache_avro(&row.path());
            let id = u32::try_from(i).unwrap() + 1;
            registry
                .insert_with_id(id, &serde_json::to_string(&schema).unwrap())
                .unwrap();
            framed.push(confluent::frame(id, &encode_body(&schema, &value)));
            ocf.push(row.bytes());
            if i == 0 {
                bare_schema = Some(Arc::new(schema));
            }
        }
        let decoder = AlertDecoder::new(InputFormat::Auto)
            .with_schema_source(registry)
            .with_bare_schema(bare_schema.unwrap());
        Fixture {
            ocf,
            framed,
            decoder,
        }
    })
}

fn no_panic(result: &Result<Vec<starlog_processors::Candidate>, DecodeError>) -> bool {
    !matches!(result, Err(DecodeError::DecoderPanic { .. }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_are_an_error(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let f = fixture();
        for format in [InputFormat::Auto, InputFormat::ObjectContainer, InputFormat::Confluent, InputFormat::Bare] {
            let d = AlertDecoder::new(format);
            prop_assert!(d.decode(&bytes).is_err());
        }
        let r = f.decoder.decode(&bytes);
        prop_assert!(r.is_err(), "random bytes decoded as an alert");
        prop_assert!(no_panic(&r));
    }

    #[test]
    fn random_bodies_behind_valid_headers_are_an_error(body in prop::collection::vec(any::<u8>(), 0..4096), which in 0usize..4) {
        let f = fixture();
        // A real Confluent header (known schema id) followed by garbage.
        let mut framed = f.framed[which][..5].to_vec();
        framed.extend_from_slice(&body);
        let r = f.decoder.decode(&framed);
        prop_assert!(r.is_err());
        prop_assert!(no_panic(&r));
        // A real container header followed by garbage blocks.
        let ocf = &f.ocf[which];
        let header_len = ocf.len().min(ocf.windows(16).position(|w| w == &ocf[ocf.len() - 16..]).unwrap() + 16);
        let mut forged = ocf[..header_len].to_vec();
        forged.extend_from_slice(&body);
        let r = f.decoder.decode(&forged);
        prop_assert!(no_panic(&r));
        if !body.is_empty() {
            prop_assert!(r.is_err(), "garbage after a container header decoded");
        }
    }

    #[test]
    fn truncated_alerts_are_an_error(which in 0usize..4, cut in 0.0..1.0f64, confluent in any::<bool>()) {
        let f = fixture();
        let whole = if confluent { &f.framed[which] } else { &f.ocf[which] };
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let len = ((whole.len() - 1) as f64 * cut) as usize;
        let r = f.decoder.decode(&whole[..len]);
        prop_assert!(r.is_err(), "a truncated alert ({} of {} bytes) decoded", len, whole.len());
        prop_assert!(no_panic(&r));
    }

    #[test]
    fn bit_flips_never_panic(which in 0usize..4, flips in prop::collection::vec((0.0..1.0f64, 0u8..8), 1..8), confluent in any::<bool>()) {
        let f = fixture();
        let mut bytes = if confluent { f.framed[which].clone() } else { f.ocf[which].clone() };
        for (pos, bit) in flips {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
            let i = ((bytes.len() - 1) as f64 * pos) as usize;
            bytes[i] ^= 1 << bit;
        }
        let r = f.decoder.decode(&bytes);
        prop_assert!(no_panic(&r));
    }
}

#[test]
fn the_fixture_itself_decodes() {
    let f = fixture();
    for (o, c) in f.ocf.iter().zip(&f.framed) {
        let a = f.decoder.decode(o).unwrap();
        let b = f.decoder.decode(c).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert_id(), b[0].alert_id());
    }
}

#[test]
fn forged_container_counts_and_codecs_are_rejected() {
    let f = fixture();
    let ocf = &f.ocf[0];
    // Find the header end: the first occurrence of the file's sync marker.
    let sync = &ocf[ocf.len() - 16..];
    let header_end = ocf.windows(16).position(|w| w == sync).unwrap() + 16;
    // A block claiming a billion records in 3 bytes.
    let mut forged = ocf[..header_end].to_vec();
    forged.extend_from_slice(&[0x80, 0xa8, 0xd6, 0xb9, 0x07, 0x06, 1, 2, 3]);
    forged.extend_from_slice(sync);
    let err = f.decoder.decode(&forged).unwrap_err();
    assert!(
        matches!(err, DecodeError::OcfBlock { block: 0, .. }),
        "{err}"
    );
    // A wrong sync marker after an otherwise valid block.
    let mut bad_sync = ocf.clone();
    let n = bad_sync.len();
    bad_sync[n - 1] ^= 0xff;
    let err = f.decoder.decode(&bad_sync).unwrap_err();
    assert!(err.to_string().contains("sync marker"), "{err}");
    // An unknown codec.
    let text = String::from_utf8_lossy(ocf);
    assert!(text.contains("avro.codec"));
    let mut snappy = ocf.clone();
    let at = ocf.windows(4).position(|w| w == b"null").unwrap();
    snappy.splice(at - 1..at + 4, [12u8].iter().copied().chain(*b"snappy"));
    let err = f.decoder.decode(&snappy).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnsupportedCodec {
            codec: "snappy".to_owned()
        }
    );
}

/// apache-avro 0.22 decodes a boolean, string or union cut off by the end
/// of input as a null; the decoder must still see truncation. Every proper
/// prefix of a real (small) alert body, bare and framed, is an error.
#[test]
fn every_prefix_of_a_small_alert_is_an_error() {
    let f = fixture();
    let framed = &f.framed[3];
    for n in 0..framed.len() {
        let r = f.decoder.decode(&framed[..n]);
        assert!(
            r.is_err(),
            "prefix of {n} of {} bytes decoded",
            framed.len()
        );
    }
    let err = f.decoder.decode(&framed[..framed.len() - 1]).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert!(f.decoder.decode(framed).is_ok());
}
