//! Zero-copy TCP relaying on Linux: each direction moves data socket → pipe → socket with splice(2), so payload
//! never enters user space. Linux only; [`crate::relay`] falls back to buffered copying elsewhere or when no pipe
//! can be made.
//!
//! The pipe of a direction is always drained before more is read into it, so a `EAGAIN` when filling it always
//! means "socket not readable" and one when draining it "socket not writable": both are handed back to tokio's
//! readiness tracking through `try_io`, never retried in a loop.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::AtomicU64;

use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use nix::sys::socket::{shutdown, Shutdown};
use nix::unistd::pipe2;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::metrics::ServiceMetrics;
use crate::relay::ignore_not_connected;

/// Pipe capacity asked for; the kernel may grant less (pipe-max-size, per-user limits), never below 64 KiB.
const WANTED_PIPE_SIZE: i32 = 1024 * 1024;

/// Capacity of a pipe when it cannot be asked: the kernel default (16 pages).
const DEFAULT_PIPE_SIZE: usize = 64 * 1024;

/// One (read end, write end) pipe and the most bytes one splice into it moves (its capacity).
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    chunk: usize,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        // A larger pipe means fewer splice calls per byte; refusal only costs throughput.
        let chunk = fcntl(&write, FcntlArg::F_SETPIPE_SZ(WANTED_PIPE_SIZE))
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(DEFAULT_PIPE_SIZE);
        Ok(Pipe { read, write, chunk })
    }
}

/// The two pipes of one relayed connection.
pub(crate) struct Pipes {
    upstream: Pipe,
    downstream: Pipe,
}

impl Pipes {
    pub(crate) fn new() -> io::Result<Pipes> {
        Ok(Pipes {
            upstream: Pipe::new()?,
            downstream: Pipe::new()?,
        })
    }

    /// Relays until both directions have ended, or either fails.
    pub(crate) async fn relay(
        self,
        client: &TcpStream,
        backend: &TcpStream,
        metrics: &ServiceMetrics,
    ) -> io::Result<()> {
        tokio::try_join!(
            pump(client, backend, &self.upstream, &metrics.bytes_in),
            pump(backend, client, &self.downstream, &metrics.bytes_out),
        )?;
        Ok(())
    }
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}

/// Moves `src` → `pipe` → `dst` until `src` ends, then shuts `dst` down for writing.
async fn pump(
    src: &TcpStream,
    dst: &TcpStream,
    pipe: &Pipe,
    counter: &AtomicU64,
) -> io::Result<()> {
    loop {
        src.readable().await?;
        let n = match src.try_io(Interest::READABLE, || {
            splice(src, None, &pipe.write, None, pipe.chunk, flags()).map_err(io::Error::from)
        }) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return ignore_not_connected(
                shutdown(dst.as_raw_fd(), Shutdown::Write).map_err(io::Error::from),
            );
        }
        let mut left = n;
        while left > 0 {
            dst.writable().await?;
            match dst.try_io(Interest::WRITABLE, || {
                splice(&pipe.read, None, dst, None, left, flags()).map_err(io::Error::from)
            }) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => left = left.saturating_sub(m),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        ServiceMetrics::add(counter, n);
    }
}
