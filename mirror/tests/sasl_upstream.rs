//! The mirror reads from an upstream that requires a login, as Rubin's
//! community-broker feed does: a Starlog upstream whose listener takes
//! SCRAM-SHA-512 only, with a read-only ACL for the mirror's user. Every
//! alert arrives locally; a wrong password stops the mirror with an error
//! that names the authentication, and nothing is written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::*;
use starlog_broker::listener::{ListenerSettings, SecurityProtocol};
use starlog_broker::security::LocalSecurityStore;
use starlog_broker::BrokerConfig;
use starlog_mirror::{run, MirrorConfig};
use starlog_security::{
    AclBinding, AclEntry, AclOperation, PatternType, Permission, Principal, ResourcePattern,
    ResourceType, ScramCredential, ScramMechanism, SecurityChange,
};

const USER: &str = "community-broker";
const PASSWORD: &str = "feed-password-42";
const TOPIC: &str = "alerts-ztf";

/// An upstream with a `feed` SASL_PLAINTEXT listener (SCRAM-SHA-512 only)
/// where the mirror's user may only read `alerts-*`, and a `producers`
/// PLAINTEXT listener the test fills the topic through.
async fn upstream() -> TestBroker {
    TestBroker::start_with(|c| {
        c.listen = BrokerConfig::default().listen;
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut feed = ListenerSettings::plaintext(any, None);
        feed.name = "feed".into();
        feed.security = SecurityProtocol::SaslPlaintext;
        feed.sasl_mechanisms = vec!["SCRAM-SHA-512".into()];
        let mut producers = ListenerSettings::plaintext(any, None);
        producers.name = "producers".into();
        c.listeners = vec![feed, producers];
        c.security.super_users = vec![Principal::anonymous()];
        c.security.allow_everyone_if_no_acl_found = false;
        let store =
            LocalSecurityStore::open(&c.data_dir.join("__meta"), c.security.policy()).unwrap();
        store
            .change_now(&SecurityChange::SetCredential {
                user: USER.into(),
                credential: ScramCredential::new(ScramMechanism::Sha512, PASSWORD, 4096).unwrap(),
            })
            .unwrap();
        store
            .change_now(&SecurityChange::CreateAcls {
                acls: vec![AclBinding {
                    pattern: ResourcePattern {
                        resource_type: ResourceType::Topic,
                        name: "alerts-".into(),
                        pattern_type: PatternType::Prefixed,
                    },
                    entry: AclEntry {
                        principal: Principal::user(USER),
                        host: "*".into(),
                        operation: AclOperation::Read,
                        permission: Permission::Allow,
                    },
                }],
            })
            .unwrap();
    })
    .await
}

fn yaml(feed: SocketAddr, up: &TestBroker, local: &TestBroker, password: &str) -> String {
    format!(
        r#"
name: rubin-feed
upstream:
  bootstrap: "{feed}"
  registry: {{ url: "{}" }}
  sasl: {{ mechanism: SCRAM-SHA-512, username: {USER}, password: "{password}" }}
local:
  bootstrap: "{}"
  registry: {{ url: "{}" }}
topics:
  - match: '{TOPIC}'
    target: ztf-buffer
    partitions: 1
progress: false
bad_input: {{ policy: stop }}
"#,
        up.registry_url(),
        local.bootstrap(),
        local.registry_url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_logs_in_to_a_scram_sha_512_upstream() {
    let up = upstream().await;
    let local = TestBroker::start().await;
    let producers = up.server().listener_addr("producers").unwrap().to_string();
    let feed = up.server().listener_addr("feed").unwrap();
    let ztf = alerts("ztf/alerts/fink-alert-simulator");
    let id = registry(&up.registry_url())
        .register(&format!("{TOPIC}-value"), &ztf[0].schema_json)
        .await
        .unwrap();
    create_topic(&producers, TOPIC, 1).await;
    let n = 3 * ztf.len();
    let values: Vec<_> = (0..n)
        .map(|i| Some(frame(id, &ztf[i % ztf.len()].body)))
        .collect();
    produce(&producers, TOPIC, &values).await;

    // A wrong password: the mirror stops with an authentication error.
    let cfg = MirrorConfig::from_yaml(&yaml(feed, &up, &local, "wrong"), Path::new(".")).unwrap();
    let refused = tokio::time::timeout(
        Duration::from_secs(60),
        run(cfg, tokio::time::sleep(Duration::from_secs(30))),
    )
    .await
    .expect("a refused login ends the mirror");
    let err = refused.expect_err("a wrong password cannot mirror");
    assert!(
        err.to_string().to_lowercase().contains("authentication"),
        "{err}"
    );
    assert_eq!(end_total(&local.bootstrap(), "ztf-buffer", 1).await, 0);

    // The right one: every alert arrives.
    let cfg = MirrorConfig::from_yaml(&yaml(feed, &up, &local, PASSWORD), Path::new(".")).unwrap();
    let bootstrap = local.bootstrap();
    let summary = run(cfg, async move {
        wait_for(
            &bootstrap,
            "ztf-buffer",
            1,
            n as i64,
            Duration::from_secs(120),
        )
        .await;
    })
    .await
    .unwrap();
    assert_eq!(summary.mirrored(), n as u64, "{summary}");
    assert_eq!(
        end_total(&local.bootstrap(), "ztf-buffer", 1).await,
        n as i64
    );
    local.stop().await;
    up.stop().await;
}
