//! Moving TCP payload between a client and a backend in both directions until both have ended.
//!
//! When one side stops sending (EOF) the other side's write half is shut down, so half-closed protocols work;
//! the other direction keeps flowing. An error in either direction ends both. Buffers are bounded (one fixed
//! buffer, or one pipe, per direction) and every wait is on socket readiness: there is no polling loop.

use std::io;
use std::sync::atomic::AtomicU64;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::metrics::ServiceMetrics;

/// Relays between `client` and `backend`, counting bytes into `metrics`.
pub(crate) async fn relay(
    mut client: TcpStream,
    mut backend: TcpStream,
    metrics: &ServiceMetrics,
    buffer_size: usize,
    use_splice: bool,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if use_splice {
        match crate::splice::Pipes::new() {
            Ok(pipes) => return pipes.relay(&client, &backend, metrics).await,
            Err(e) => tracing::debug!(error = %e, "userspace proxy: no pipe for splice, copying"),
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = use_splice;
    let (mut cr, mut cw) = client.split();
    let (mut br, mut bw) = backend.split();
    tokio::try_join!(
        copy_one_way(&mut cr, &mut bw, &metrics.bytes_in, buffer_size),
        copy_one_way(&mut br, &mut cw, &metrics.bytes_out, buffer_size),
    )?;
    Ok(())
}

/// Copies `from` into `to` until EOF, then shuts `to` down for writing.
async fn copy_one_way<R, W>(
    from: &mut R,
    to: &mut W,
    counter: &AtomicU64,
    buffer_size: usize,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; buffer_size.max(1)];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return ignore_not_connected(to.shutdown().await);
        }
        to.write_all(&buf[..n]).await?;
        ServiceMetrics::add(counter, n);
    }
}

/// A peer that already went away makes a shutdown fail with ENOTCONN; there is nothing left to tell it.
pub(crate) fn ignore_not_connected(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}
