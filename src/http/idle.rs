//! Closes connections on which no byte has moved, in either direction, for
//! the idle timeout.
//!
//! A per-operation read timeout would cut a long download whose client sends
//! nothing, and a write timeout would cut a blocking playlist reload that is
//! legitimately quiet; the connection is idle only when both are.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pin_project! {
    pub struct IdleTimeout<S> {
        #[pin]
        inner: S,
        idle: Idle,
    }
}

/// When the connection last moved a byte, and a timer that fires no earlier
/// than the timeout after it. The timer is moved only when it fires:
/// resetting it on every read and write (`tokio::time::Sleep::reset`, a
/// runtime handle clone and a timer update, sometimes a re-registration)
/// was a visible share of a small request's cost.
struct Idle {
    deadline: Pin<Box<Sleep>>,
    last_activity: Instant,
    timeout: Duration,
}

impl<S> IdleTimeout<S> {
    pub fn new(inner: S, timeout: Duration) -> Self {
        IdleTimeout {
            inner,
            idle: Idle {
                deadline: Box::pin(tokio::time::sleep(timeout)),
                last_activity: Instant::now(),
                timeout,
            },
        }
    }
}

impl Idle {
    fn on_poll<T>(
        &mut self,
        result: Poll<io::Result<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(result) => {
                self.last_activity = Instant::now();
                Poll::Ready(result)
            }
            Poll::Pending => loop {
                if self.deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // A timeout too large to add is one that never comes.
                let Some(due) = self.last_activity.checked_add(self.timeout) else {
                    return Poll::Pending;
                };
                if due <= Instant::now() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connection idle for {:?}", self.timeout),
                    )));
                }
                // Bytes moved since the timer was set: wait for the rest.
                self.deadline.as_mut().reset(due);
            },
        }
    }
}

impl<S: AsyncRead> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        this.idle.on_poll(this.inner.poll_read(cx, buf), cx)
    }
}

impl<S: AsyncWrite> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        this.idle.on_poll(this.inner.poll_write(cx, buf), cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        this.idle
            .on_poll(this.inner.poll_write_vectored(cx, bufs), cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        this.idle.on_poll(this.inner.poll_flush(cx), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn quiet_connections_time_out_and_busy_ones_do_not() {
        let (client, server) = tokio::io::duplex(64);
        let mut server = IdleTimeout::new(server, Duration::from_secs(10));
        let mut client = client;

        // Traffic every 6 s keeps the connection alive past the timeout.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            client.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            server.read_exact(&mut byte).await.unwrap();
        }
        let mut byte = [0u8; 1];
        let err = server.read_exact(&mut byte).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn the_timeout_counts_from_the_last_byte_in_either_direction() {
        let (mut client, server) = tokio::io::duplex(64);
        let server = IdleTimeout::new(server, Duration::from_secs(10));
        let (mut reader, mut writer) = tokio::io::split(server);
        let start = Instant::now();
        // The server's read waits the whole time; only its writes move bytes.
        let read = tokio::spawn(async move {
            let mut byte = [0u8; 1];
            let err = reader.read_exact(&mut byte).await.unwrap_err();
            (err.kind(), start.elapsed())
        });
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            writer.write_all(b"x").await.unwrap();
            let mut byte = [0u8; 1];
            client.read_exact(&mut byte).await.unwrap();
        }
        let (kind, after) = read.await.unwrap();
        assert_eq!(kind, io::ErrorKind::TimedOut);
        // The last byte went at 18 s: the timeout is 10 s after it, not
        // 10 s after the timer was first set, nor later.
        assert_eq!(after, Duration::from_secs(28));
    }
}
