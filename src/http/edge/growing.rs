//! A segment its owner is still writing, relayed as it grows (low-latency
//! DASH reads a segment by chunked transfer from one part after its
//! start): one request to the owner whatever the number of viewers; each
//! viewer gets the chunks received so far, then each new one, as shared
//! `Bytes`. A transfer the owner breaks off ends every viewer's response
//! with an error, so that no cache keeps a cut segment.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::stream;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::watch;

/// Why a segment's transfer from its owner broke off.
#[derive(Debug, thiserror::Error)]
pub(super) enum BrokenOff {
    #[error("no bytes for {} s", .0.as_secs())]
    Silent(Duration),
    #[error("longer than {0} bytes")]
    TooLong(usize),
    #[error("{0}")]
    Body(#[from] hyper::Error),
}

/// How a growing segment's transfer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    Open,
    Done,
    Failed,
}

/// The chunks of one segment received from its owner so far.
pub(super) struct Growing {
    chunks: Mutex<Vec<Bytes>>,
    progress: watch::Sender<Progress>,
}

impl Growing {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            chunks: Mutex::new(Vec::new()),
            progress: watch::Sender::new(Progress::Open),
        })
    }

    /// Reads the owner's `body` to its end, each frame within `idle` of
    /// the one before and `max` bytes in all: the whole segment, or why
    /// it broke off. Every viewer follows along.
    pub(super) async fn read(
        &self,
        mut body: Incoming,
        idle: Duration,
        max: usize,
    ) -> Result<Bytes, BrokenOff> {
        let mut received = 0usize;
        let outcome = loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => break Err(BrokenOff::Silent(idle)),
                Ok(None) => break Ok(()),
                Ok(Some(Err(err))) => break Err(BrokenOff::Body(err)),
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            received += data.len();
            if received > max {
                break Err(BrokenOff::TooLong(max));
            }
            lock(&self.chunks).push(data);
            self.progress.send_modify(|_| {});
        };
        match outcome {
            Ok(()) => {
                self.progress.send_replace(Progress::Done);
                let chunks = lock(&self.chunks);
                let mut whole = BytesMut::with_capacity(received);
                for chunk in chunks.iter() {
                    whole.extend_from_slice(chunk);
                }
                Ok(whole.freeze())
            }
            Err(broken) => {
                self.progress.send_replace(Progress::Failed);
                Err(broken)
            }
        }
    }

    /// A viewer's response body: from the first chunk, to the end.
    pub(super) fn body(self: &Arc<Self>) -> Body {
        let reader = Reader {
            growing: self.clone(),
            progress: self.progress.subscribe(),
            next: 0,
            over: false,
        };
        Body::from_stream(stream::unfold(reader, Reader::next))
    }
}

/// One viewer's place in a growing segment.
struct Reader {
    growing: Arc<Growing>,
    progress: watch::Receiver<Progress>,
    next: usize,
    over: bool,
}

impl Reader {
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        if self.over {
            return None;
        }
        loop {
            // Seen before the chunks are read: a chunk pushed after this
            // wakes the wait below.
            let progress = *self.progress.borrow_and_update();
            let chunk = lock(&self.growing.chunks).get(self.next).cloned();
            if let Some(chunk) = chunk {
                self.next += 1;
                return Some((Ok(chunk), self));
            }
            match progress {
                Progress::Done => return None,
                Progress::Failed => {
                    self.over = true;
                    let err = std::io::Error::other("the owner's segment transfer broke off");
                    return Some((Err(err), self));
                }
                Progress::Open => {
                    if self.progress.changed().await.is_err() {
                        self.over = true;
                        let err = std::io::Error::other("the segment's relay stopped");
                        return Some((Err(err), self));
                    }
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
