//! The broker's HTTP listener (`http.listen`, or `schema_registry.listen`):
//! `/metrics`, `/cluster/*` in cluster mode, and the schema registry's
//! routes when the registry is enabled.

use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves `router` on `listener` until `shutdown` flips.
pub async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!(?addr, error = %e, "HTTP listener stopped");
    }
}
