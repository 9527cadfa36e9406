//! The registry client (the clients crate's, on hyper) against the broker's
//! real registry and against scripted misbehaving servers; the id mapper's
//! caching.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use starlog_mirror::registry::{MapError, RegistryClient, RegistryError, SchemaMapper};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SCHEMA: &str = r#"{"type":"record","name":"r","fields":[{"name":"candid","type":"long"}]}"#;

/// A server that answers every connection with `reply` (after reading the
/// request head), or never answers when `reply` is `None`.
async fn scripted(reply: Option<&'static [u8]>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        // Bounded: a test makes a handful of requests.
        for _ in 0..8 {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                match reply {
                    Some(r) => {
                        let _ = s.write_all(r).await;
                        let _ = s.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    format!("http://{addr}")
}

fn client(url: &str) -> RegistryClient {
    RegistryClient::new(
        "upstream",
        url,
        Some(("user", "pw")),
        None,
        Duration::from_millis(700),
    )
    .unwrap()
}

#[tokio::test]
async fn the_real_registry_registers_and_serves_schemas() {
    let b = TestBroker::start().await;
    let r = client(&b.registry_url());
    let id = r.register("a/b value", SCHEMA).await.unwrap();
    assert_eq!(
        r.register("a/b value", SCHEMA).await.unwrap(),
        id,
        "same schema, same id"
    );
    let text = r.schema_text(id).await.unwrap();
    assert_eq!(
        apache_avro::Schema::parse_str(&text).unwrap(),
        apache_avro::Schema::parse_str(SCHEMA).unwrap()
    );
    assert!(
        matches!(r.schema_text(id + 1000).await, Err(RegistryError::NotFound { id: i, .. }) if i == id + 1000)
    );
    assert!(matches!(
        r.register("s", "{not a schema").await,
        Err(RegistryError::Refused { .. })
    ));
    b.stop().await;
}

#[tokio::test]
async fn misbehaving_servers_are_unavailable_not_answers() {
    let chunked: &'static [u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"sch\r\n11\r\nema\": \"\\\"long\\\"\"}\r\n0\r\n\r\n";
    let ok = client(&scripted(Some(chunked)).await);
    assert_eq!(ok.schema_text(1).await.unwrap(), "\"long\"");

    let cases: [(&'static [u8], &str); 4] = [
        (
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
            "503",
        ),
        (b"garbage garbage\r\n\r\n", "malformed"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"schema\"",
            "before the end of the body",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]",
            "unexpected body",
        ),
    ];
    for (reply, fragment) in cases {
        let c = client(&scripted(Some(reply)).await);
        match c.schema_text(1).await {
            Err(e @ RegistryError::Unavailable { .. }) => {
                assert!(e.is_transient());
                assert!(e.to_string().contains(fragment), "{e} lacks {fragment}");
            }
            other => panic!("{fragment}: {other:?}"),
        }
    }
    let silent = client(&scripted(None).await);
    let e = silent.schema_text(1).await.unwrap_err();
    assert!(e.to_string().contains("no answer within"), "{e}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = client(&format!("http://{closed}"))
        .schema_text(1)
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(RegistryClient::new("x", "ftp://h", None, None, Duration::from_secs(1)).is_err());
}

#[tokio::test]
async fn each_upstream_id_is_resolved_once() {
    let up = TestBroker::start().await;
    let local = TestBroker::start().await;
    register_unrelated(&up.registry_url(), 3).await;
    let up_id = client(&up.registry_url())
        .register("x-value", SCHEMA)
        .await
        .unwrap();
    let mut m = SchemaMapper::new(
        client(&up.registry_url()),
        client(&local.registry_url()),
        vec!["candid".into()],
        Duration::from_secs(60),
    );
    let a = m.map(up_id, "buffer-value").await.unwrap();
    assert_ne!(a.local_id, up_id);
    assert_eq!(
        a.schema.alert_id.as_ref().map(|r| r.field().to_owned()),
        Some("candid".into())
    );
    for _ in 0..10 {
        assert_eq!(
            m.map(up_id, "buffer-value").await.unwrap().local_id,
            a.local_id
        );
    }
    assert_eq!(m.calls, 2, "one GET upstream, one POST locally");
    // Another subject: one more registration, same local id.
    assert_eq!(
        m.map(up_id, "other-value").await.unwrap().local_id,
        a.local_id
    );
    assert_eq!(m.calls, 3);
    // An unknown id is asked once, then remembered.
    for _ in 0..3 {
        assert!(matches!(
            m.map(4242, "buffer-value").await,
            Err(MapError::UnknownId { id: 4242, .. })
        ));
    }
    assert_eq!(m.calls, 4);
    assert_eq!(m.mappings().len(), 2);
    local.stop().await;
    up.stop().await;
}
