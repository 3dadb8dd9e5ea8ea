//! An ffmpeg child that writes fragmented MP4 to its standard output, read
//! back as tracks and samples: how transcode rungs and live ladder rungs
//! get what ffmpeg encoded. The child is spawned through [`Processes`], so
//! dropping an [`Fmp4Child`] kills and reaps it; the last lines of its
//! stderr explain a failure.

use std::process::ExitStatus;

use streamforge_protocols::mp4::{FragmentedReader, Mp4Error, ReaderEvent};
use tokio::io::AsyncReadExt;
use tokio::process::{ChildStdin, ChildStdout};
use tokio::task::JoinHandle;

use crate::process::{ChildProcess, Processes, piped, stderr_tail};

/// Bytes read from ffmpeg's output at a time, at most (a read returns what
/// is there, so a large buffer costs no latency).
const READ_CHUNK: usize = 256 * 1024;
/// Lines of ffmpeg's stderr kept to explain a failure.
const STDERR_TAIL: usize = 8;

/// Why an ffmpeg run gave no (or no more) media.
#[derive(Debug, thiserror::Error)]
pub enum FfmpegError {
    #[error("cannot start ffmpeg: {0}")]
    Start(#[source] std::io::Error),
    #[error("reading ffmpeg's output: {0}")]
    Read(#[source] std::io::Error),
    #[error("ffmpeg's output: {0}")]
    Output(#[from] Mp4Error),
    #[error("waiting for ffmpeg: {0}")]
    Wait(#[source] std::io::Error),
    #[error("ffmpeg failed ({status}): {stderr}")]
    Failed { status: ExitStatus, stderr: String },
}

/// A running ffmpeg whose output is fragmented MP4.
pub struct Fmp4Child {
    child: ChildProcess,
    stdout: ChildStdout,
    stdin: Option<ChildStdin>,
    stderr: JoinHandle<String>,
    reader: FragmentedReader,
    buffer: Vec<u8>,
}

impl Fmp4Child {
    /// Starts `ffmpeg {args}`, named `label` in the process registry. With
    /// `stdin`, its standard input is a pipe ([`take_stdin`](Self::take_stdin));
    /// otherwise it reads nothing from us.
    pub fn spawn(
        processes: &Processes,
        label: &str,
        args: impl IntoIterator<Item = String>,
        stdin: bool,
    ) -> Result<Self, FfmpegError> {
        let mut command = piped("ffmpeg");
        if stdin {
            command.stdin(std::process::Stdio::piped());
        }
        command.args(args);
        let mut child = processes
            .spawn(label, command)
            .map_err(FfmpegError::Start)?;
        let missing =
            |what: &str| FfmpegError::Start(std::io::Error::other(format!("ffmpeg has no {what}")));
        let stdout = child.take_stdout().ok_or_else(|| missing("stdout"))?;
        let stdin = match stdin {
            true => Some(child.take_stdin().ok_or_else(|| missing("stdin"))?),
            false => None,
        };
        let stderr = stderr_tail(child.take_stderr(), STDERR_TAIL);
        Ok(Fmp4Child {
            child,
            stdout,
            stdin,
            stderr,
            reader: FragmentedReader::new(),
            buffer: vec![0; READ_CHUNK],
        })
    }

    /// ffmpeg's standard input, when it was spawned with one.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// The next tracks or sample of ffmpeg's output; `None` once ffmpeg
    /// closed it (then [`finish`](Self::finish) tells how it exited).
    pub async fn next(&mut self) -> Result<Option<ReaderEvent>, FfmpegError> {
        loop {
            if let Some(event) = self.reader.poll()? {
                return Ok(Some(event));
            }
            let n = self
                .stdout
                .read(&mut self.buffer)
                .await
                .map_err(FfmpegError::Read)?;
            if n == 0 {
                return Ok(None);
            }
            self.reader.feed(&self.buffer[..n]);
        }
    }

    /// Waits for ffmpeg to exit. `Ok` with the last lines of its stderr
    /// when it succeeded, the failure with them otherwise.
    pub async fn finish(mut self) -> Result<String, FfmpegError> {
        drop(self.stdin.take());
        let status = self.child.wait().await.map_err(FfmpegError::Wait)?;
        let stderr = (&mut self.stderr).await.unwrap_or_default();
        if status.success() {
            Ok(stderr)
        } else {
            Err(FfmpegError::Failed { status, stderr })
        }
    }
}
