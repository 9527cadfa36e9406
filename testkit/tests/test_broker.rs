//! The test broker starts on free loopback ports, restarts on the same
//! ports with its data, and stops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use starlog_testkit::TestBroker;

#[tokio::test]
async fn starts_restarts_on_the_same_ports_and_stops() {
    let mut b = TestBroker::start().await;
    let addr = b.addr();
    let registry = b.registry_url();
    assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    b.restart().await;
    assert_eq!(b.addr(), addr);
    assert_eq!(b.registry_url(), registry);
    assert!(b.dir.path().join("data").is_dir());
    b.stop().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn tweaks_apply() {
    let b = TestBroker::start_with(|c| c.schema_registry.enabled = false).await;
    assert_eq!(b.server().registry_addr(), None);
    b.stop().await;
}

#[global_allocator]
static GLOBAL: starlog_alloc::GuardedAllocator = starlog_alloc::GuardedAllocator;
