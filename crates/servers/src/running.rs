//! [`RunningServer`]: an axum router served on a bound listener by a tokio task, stoppable on demand.
//!
//! Uses its own accept loop (hyper-util, HTTP/1 and HTTP/2) rather than `axum::serve` so that stopping is
//! prompt and complete, like Go's `http.Server.Close`: the listener is closed before `shutdown` returns and
//! open connections are dropped, so the port can be bound again at once.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::ServersError;

/// A server running in the background. Dropping it stops the server (without waiting).
#[must_use = "dropping a RunningServer stops it"]
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningServer {
    /// Serves `router` on `listener` in a new task (must be called within a tokio runtime).
    pub(crate) fn spawn(
        server: &'static str,
        listener: TcpListener,
        router: Router,
    ) -> Result<Self, ServersError> {
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServersError::LocalAddr { server, source })?;
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(server, listener, router, stopped));
        Ok(RunningServer {
            local_addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the server and waits until its listener is closed.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds `addr` for `server` (tokio sets SO_REUSEADDR, as Go does).
pub(crate) async fn bind(
    server: &'static str,
    addr: SocketAddr,
) -> Result<TcpListener, ServersError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServersError::Bind {
            server,
            addr,
            source,
        })
}

async fn accept_loop(
    server: &'static str,
    listener: TcpListener,
    router: Router,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            // A stop request, or the RunningServer dropped.
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let service = TowerToHyperService::new(router.clone());
                    connections.spawn(async move {
                        let builder = auto::Builder::new(TokioExecutor::new());
                        if let Err(err) = builder.serve_connection(TokioIo::new(stream), service).await {
                            tracing::debug!(server, %err, "HTTP connection ended with an error");
                        }
                    });
                }
                Err(err) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(server, %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Returning drops the listener (port closed) and the JoinSet (open connections aborted).
}
