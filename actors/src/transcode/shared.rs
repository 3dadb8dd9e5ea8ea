//! The shared ladder: one ffmpeg that decodes the source once and encodes
//! every rung that starts from the beginning — each video rung scaled from
//! one `split`, the audio rung, and the storyboard — writing each rung's
//! output into a pipe of its own (`pipe:N`). Each [`Rung`](super::rung::Rung)
//! actor reads its stream from a channel and packages it exactly as it would
//! its own ffmpeg's output.
//!
//! Policy:
//! - A pump task per output reads the pipe into the rung's bounded channel
//!   (ffmpeg waits while a rung is behind; no rung holds more than the
//!   channel's few chunks of encoded bytes). When the rung is gone — it
//!   failed and its `Job` restarts it alone, with an ffmpeg of its own from
//!   its last stored segment — the pump goes on reading and drops the bytes,
//!   so ffmpeg (which stops every output when one pipe breaks) and the other
//!   rungs go on.
//! - Each stream ends with ffmpeg's exit status: a rung finishes only if the
//!   process that encoded it succeeded. When the shared ffmpeg fails (or is
//!   killed), every rung it fed fails and is restarted on its own.
//! - The [`SharedLadder`] handle owns the process: dropping it (the job
//!   stops) aborts the task, which kills and reaps ffmpeg.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::ExitStatus;

use bytes::{Bytes, BytesMut};
use streamforge_protocols::mp4::{FragmentedReader, ReaderEvent};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::rung::{
    FMP4_OUTPUT, GROWING_INPUT, POSTER_OUTPUT, POSTER_SCALE, RungSpec, STORYBOARD_OUTPUT,
    TILES_OUTPUT, encode_args, poster_at_ms, scale_filter, storyboard_filter, strings, tile_slots,
    tiles_filter,
};
use crate::ffmpeg::FfmpegError;
use crate::process::{ChildProcess, Processes, inherit_fds, piped, stderr_tail};

/// Bytes read from an output pipe at a time (a pipe holds 64 KiB).
const READ_CHUNK: usize = 64 * 1024;
/// Chunks waiting for a rung: ffmpeg blocks on that rung's pipe beyond.
const CHANNEL_CHUNKS: usize = 4;
/// Lines of ffmpeg's stderr kept to explain a failure.
const STDERR_TAIL: usize = 8;
/// The stream of the poster, beside the thumbnails rung's storyboard.
pub(super) const POSTER: &str = "poster";

/// How the shared ffmpeg ended, as every stream it fed sees it.
#[derive(Clone, Debug)]
enum Exit {
    Exited { status: ExitStatus, stderr: String },
    Lost(String),
}

enum Piece {
    Data(Bytes),
    End(Exit),
}

/// The running shared ffmpeg; dropping this kills it.
pub(super) struct SharedLadder {
    work: JoinHandle<()>,
}

impl Drop for SharedLadder {
    fn drop(&mut self) {
        self.work.abort();
    }
}

/// One rung's output of the shared ffmpeg.
pub(crate) struct SharedStream {
    chunks: mpsc::Receiver<Piece>,
    reader: FragmentedReader,
    exit: Option<Exit>,
}

impl SharedStream {
    /// The next tracks or sample of the rung's fragmented MP4; `None` at its
    /// end (then [`finish`](Self::finish) tells how ffmpeg exited).
    pub async fn next(&mut self) -> Result<Option<ReaderEvent>, FfmpegError> {
        loop {
            if let Some(event) = self.reader.poll()? {
                return Ok(Some(event));
            }
            match self.chunks.recv().await {
                Some(Piece::Data(bytes)) => self.reader.feed(&bytes),
                Some(Piece::End(exit)) => {
                    self.exit = Some(exit);
                    return Ok(None);
                }
                None => return Ok(None),
            }
        }
    }

    /// The next bytes of the output as ffmpeg wrote them; `None` at its
    /// end, once ffmpeg succeeded.
    pub async fn next_bytes(&mut self) -> Result<Option<Bytes>, FfmpegError> {
        if self.exit.is_none() {
            match self.chunks.recv().await {
                Some(Piece::Data(bytes)) => return Ok(Some(bytes)),
                Some(Piece::End(exit)) => self.exit = Some(exit),
                None => {}
            }
        }
        ended(self.exit.clone()).map(|_| None)
    }

    /// How ffmpeg exited: `Ok` with the last lines of its stderr when it
    /// succeeded.
    pub async fn finish(mut self) -> Result<String, FfmpegError> {
        while self.exit.is_none() {
            match self.chunks.recv().await {
                Some(Piece::Data(_)) => {}
                Some(Piece::End(exit)) => self.exit = Some(exit),
                None => break,
            }
        }
        ended(self.exit)
    }

    /// The first WebP picture of the output, as soon as its bytes are in
    /// (ffmpeg writes a picture when it is encoded, and ends only with the
    /// rest of the ladder).
    pub async fn first_picture(mut self) -> Result<Bytes, FfmpegError> {
        let mut all = BytesMut::new();
        loop {
            if all.len() >= 12 {
                if &all[..4] != b"RIFF" || &all[8..12] != b"WEBP" {
                    return Err(FfmpegError::Read(std::io::Error::other(
                        "the poster output is not a WebP picture",
                    )));
                }
                // The RIFF size counts from "WEBP" on: at least its 4 bytes.
                let riff = u32::from_le_bytes([all[4], all[5], all[6], all[7]]);
                let size = usize::try_from(u64::from(riff) + 8).unwrap_or(usize::MAX);
                if riff < 4 {
                    return Err(FfmpegError::Read(std::io::Error::other(
                        "the poster output's RIFF size is too small",
                    )));
                }
                if all.len() >= size {
                    all.truncate(size);
                    return Ok(all.freeze());
                }
            }
            match self.chunks.recv().await {
                Some(Piece::Data(bytes)) => all.extend_from_slice(&bytes),
                Some(Piece::End(exit)) => {
                    let stderr = ended(Some(exit))?;
                    return Err(FfmpegError::Read(std::io::Error::other(format!(
                        "ffmpeg wrote no whole picture: {stderr}"
                    ))));
                }
                None => {
                    return Err(ended(None).err().unwrap_or(FfmpegError::Read(
                        std::io::Error::other("the shared ffmpeg's output ended"),
                    )));
                }
            }
        }
    }

    /// The whole output (a picture), once ffmpeg succeeded.
    pub async fn collect(mut self) -> Result<Bytes, FfmpegError> {
        let mut all = BytesMut::new();
        while self.exit.is_none() {
            match self.chunks.recv().await {
                Some(Piece::Data(bytes)) => all.extend_from_slice(&bytes),
                Some(Piece::End(exit)) => self.exit = Some(exit),
                None => break,
            }
        }
        let stderr = ended(self.exit)?;
        if all.is_empty() {
            return Err(FfmpegError::Read(std::io::Error::other(format!(
                "ffmpeg wrote no picture: {stderr}"
            ))));
        }
        Ok(all.freeze())
    }
}

fn ended(exit: Option<Exit>) -> Result<String, FfmpegError> {
    match exit {
        Some(Exit::Exited { status, stderr }) if status.success() => Ok(stderr),
        Some(Exit::Exited { status, stderr }) => Err(FfmpegError::Failed { status, stderr }),
        Some(Exit::Lost(reason)) => Err(FfmpegError::Wait(std::io::Error::other(reason))),
        None => Err(FfmpegError::Wait(std::io::Error::other(
            "the shared ffmpeg was stopped",
        ))),
    }
}

/// The part of the source a shared ffmpeg encodes: from `start_ms` (a
/// keyframe of every rung) to `end_ms` or the end. A `chunk` is one span of
/// a ladder cut for several workers: its thumbnails rung makes the
/// storyboard tiles of the span (and the poster, if it falls in the span)
/// for the rung to lay out once every span is done, rather than a sprite.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Window {
    pub start_ms: u64,
    pub end_ms: Option<u64>,
    pub chunk: bool,
}

impl Window {
    /// Where ffmpeg seeks to, in seconds; `None` from the start.
    fn seek(&self) -> Option<String> {
        (self.start_ms > 0).then(|| seconds(self.start_ms))
    }

    /// How long the span is, in seconds; `None` to the end.
    fn length(&self) -> Option<String> {
        self.end_ms
            .map(|end| seconds(end.saturating_sub(self.start_ms)))
    }
}

/// `ms` as ffmpeg's seconds, exactly.
pub(super) fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Starts one ffmpeg for `specs` (video rungs, the audio rung, the
/// thumbnails rung's storyboard and poster) on `source`; returns it and
/// each rung's stream by rung name (the poster's as [`POSTER`]).
pub(super) fn start(
    processes: &Processes,
    label: &str,
    source: &str,
    growing: bool,
    window: Window,
    specs: &[RungSpec],
) -> Result<(SharedLadder, HashMap<String, SharedStream>), FfmpegError> {
    let mut args = strings(&["-hide_banner", "-nostdin", "-v", "error"]);
    if growing {
        args.extend(strings(&GROWING_INPUT));
    }
    if let Some(seek) = window.seek() {
        // As a rung's own ffmpeg seeks (see `rung::ffmpeg_args`).
        args.push("-ss".into());
        args.push(seek);
    }
    args.extend(strings(&["-i", source]));
    let outputs = outputs(specs, &window);
    if outputs.is_empty() {
        // Nothing to make (a span without a storyboard tile): no ffmpeg.
        let work = tokio::spawn(async {});
        return Ok((SharedLadder { work }, HashMap::new()));
    }
    // Every picture output is a branch of one decode.
    let pictures: Vec<&str> = outputs.iter().filter_map(|o| o.filter.as_deref()).collect();
    if !pictures.is_empty() {
        let mut graph = format!("[0:v:0]split={}", pictures.len());
        for i in 0..pictures.len() {
            graph.push_str(&format!("[s{i}]"));
        }
        for (i, filter) in pictures.iter().enumerate() {
            graph.push_str(&format!(";[s{i}]{filter}[o{i}]"));
        }
        args.push("-filter_complex".into());
        args.push(graph);
    }
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut pumps = Vec::new();
    let mut streams = HashMap::new();
    let mut branch = 0;
    for output in outputs {
        let (writer, reader) = pipe::pipe().map_err(FfmpegError::Start)?;
        let writer = writer.into_blocking_fd().map_err(FfmpegError::Start)?;
        if let Some(length) = window.length().filter(|_| output.timed) {
            args.push("-t".into());
            args.push(length);
        }
        args.push("-map".into());
        match output.filter {
            None => args.push("0:a:0".into()),
            Some(_) => {
                args.push(format!("[o{branch}]"));
                branch += 1;
            }
        }
        args.extend(output.encoding);
        args.push(format!("pipe:{}", writer.as_raw_fd()));
        fds.push(writer);
        let (sender, chunks) = mpsc::channel(CHANNEL_CHUNKS);
        pumps.push((reader, sender));
        streams.insert(
            output.name,
            SharedStream {
                chunks,
                reader: FragmentedReader::new(),
                exit: None,
            },
        );
    }
    let mut command = piped("ffmpeg");
    command.args(args);
    inherit_fds(&mut command, &fds);
    let mut child = processes
        .spawn(label, command)
        .map_err(FfmpegError::Start)?;
    // Our copies of the write ends: ffmpeg's exit is each pipe's end.
    drop(fds);
    drop(child.take_stdout());
    let stderr = stderr_tail(child.take_stderr(), STDERR_TAIL);
    let work = tokio::spawn(supervise(child, stderr, pumps));
    Ok((SharedLadder { work }, streams))
}

/// One output of the shared ffmpeg.
struct Output {
    /// The stream's name: the rung's, or [`POSTER`].
    name: String,
    /// The filter of its branch of the decoded video; `None` for audio.
    filter: Option<String>,
    /// Its encoding and container options.
    encoding: Vec<String>,
    /// Whether the window's length ends it (`-t`); the storyboard's tiles
    /// end in their filter.
    timed: bool,
}

/// The outputs for `specs`: one per rung, and the poster beside the
/// thumbnails rung's storyboard. In a `chunk`, the thumbnails rung's
/// output is the span's storyboard tiles (none when no tile falls in the
/// span), and the poster is made only by the span it falls in.
fn outputs(specs: &[RungSpec], window: &Window) -> Vec<Output> {
    let mut outputs = Vec::with_capacity(specs.len() + 1);
    for spec in specs {
        let fmp4 = || {
            let mut encoding = encode_args(spec);
            encoding.extend(strings(&FMP4_OUTPUT));
            encoding
        };
        match spec {
            RungSpec::Audio { .. } => outputs.push(Output {
                name: spec.name(),
                filter: None,
                encoding: fmp4(),
                timed: true,
            }),
            RungSpec::Video { height, .. } => outputs.push(Output {
                name: spec.name(),
                filter: Some(scale_filter(*height)),
                encoding: fmp4(),
                timed: true,
            }),
            RungSpec::Thumbnails { duration_ms, .. } => {
                let at = poster_at_ms(*duration_ms);
                if window.chunk {
                    let slots = tile_slots(spec, window.start_ms, window.end_ms);
                    // Ended in the graph at the span's end, not by `-t`
                    // (that cuts a last tile `fps` gives at its end) nor by
                    // `-frames:v` (ffmpeg 5.1 then runs the rest of the
                    // ladder 25 % slower once that output is done:
                    // measured, a 16 s span of 1080p in 16.5 s, not 13.3).
                    if let Some(filter) = tiles_filter(spec, window, &slots) {
                        outputs.push(Output {
                            name: spec.name(),
                            filter: Some(filter),
                            encoding: strings(&TILES_OUTPUT),
                            timed: false,
                        });
                    }
                    let inside = at >= window.start_ms && window.end_ms.is_none_or(|end| at < end);
                    if inside {
                        outputs.push(poster(at - window.start_ms));
                    }
                    continue;
                }
                outputs.push(Output {
                    name: spec.name(),
                    filter: Some(storyboard_filter(spec).unwrap_or_else(|| "null".to_owned())),
                    encoding: strings(&STORYBOARD_OUTPUT),
                    timed: true,
                });
                outputs.push(poster(at));
            }
        }
    }
    outputs
}

/// The poster: the first frame from `at_ms` into the window, then the end
/// of the branch: a second `trim` ends it after that frame, so `split`
/// stops feeding it (left open, it would scale every later frame for an
/// output that is finished: 1.1 s of CPU per 20 s of 1080p).
fn poster(at_ms: u64) -> Output {
    Output {
        name: POSTER.to_owned(),
        filter: Some(format!(
            "trim=start={},trim=end_frame=1,{POSTER_SCALE}",
            seconds(at_ms)
        )),
        encoding: strings(&POSTER_OUTPUT),
        timed: true,
    }
}

/// Runs the pumps until ffmpeg exits and every pipe is read to its end.
async fn supervise(
    mut child: ChildProcess,
    stderr: JoinHandle<String>,
    outputs: Vec<(pipe::Receiver, mpsc::Sender<Piece>)>,
) {
    let (exit_tx, exit_rx) = watch::channel(None::<Exit>);
    let mut pumps = JoinSet::new();
    for (reader, sender) in outputs {
        pumps.spawn(pump(reader, sender, exit_rx.clone()));
    }
    let exit = match child.wait().await {
        Ok(status) => Exit::Exited {
            status,
            stderr: stderr.await.unwrap_or_default(),
        },
        Err(err) => Exit::Lost(format!("waiting for the shared ffmpeg: {err}")),
    };
    let _ = exit_tx.send(Some(exit));
    while pumps.join_next().await.is_some() {}
}

/// Moves one output pipe into its rung's channel, then ffmpeg's exit;
/// once the rung is gone, reads on and drops the bytes.
async fn pump(
    mut reader: pipe::Receiver,
    sender: mpsc::Sender<Piece>,
    mut exit: watch::Receiver<Option<Exit>>,
) {
    let mut sender = Some(sender);
    let mut broken = None;
    loop {
        let mut chunk = BytesMut::with_capacity(READ_CHUNK);
        match reader.read_buf(&mut chunk).await {
            Ok(0) => break,
            Ok(_) => {
                if let Some(to) = &sender
                    && to.send(Piece::Data(chunk.freeze())).await.is_err()
                {
                    sender = None;
                }
            }
            Err(err) => {
                broken = Some(Exit::Lost(format!(
                    "reading the shared ffmpeg's output: {err}"
                )));
                break;
            }
        }
    }
    let exit = match broken {
        Some(broken) => broken,
        None => match exit.wait_for(Option::is_some).await {
            Ok(exit) => exit.clone().unwrap_or(Exit::Lost("no exit status".into())),
            Err(_) => Exit::Lost("the shared ffmpeg's supervisor is gone".into()),
        },
    };
    if let Some(to) = sender {
        let _ = to.send(Piece::End(exit)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4 s 320x180 clip with audio, made by ffmpeg.
    fn clip(dir: &std::path::Path) -> String {
        let path = dir.join("clip.mp4");
        let out = std::process::Command::new("ffmpeg")
            .args(["-hide_banner", "-v", "error"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-t", "4", "-c:v", "libx264", "-preset", "ultrafast"])
            .args(["-c:a", "aac"])
            .arg(&path)
            .output()
            .expect("ffmpeg is installed (scripts/setup --test)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        path.display().to_string()
    }

    fn ladder() -> Vec<RungSpec> {
        vec![
            RungSpec::Video {
                height: 180,
                kbps: 300,
            },
            RungSpec::Video {
                height: 120,
                kbps: 200,
            },
            RungSpec::Audio { kbps: 64 },
            RungSpec::Thumbnails {
                tile_width: 160,
                tile_height: 90,
                interval_ms: 2000,
                duration_ms: 4000,
            },
        ]
    }

    /// Samples of `stream` by track kind, and how ffmpeg exited.
    async fn drain(mut stream: SharedStream) -> (usize, Result<String, FfmpegError>) {
        let mut samples = 0;
        while let Some(event) = stream.next().await.expect("valid fragmented MP4") {
            if let ReaderEvent::Sample(_) = event {
                samples += 1;
            }
        }
        (samples, stream.finish().await)
    }

    #[tokio::test]
    async fn every_rung_of_one_decode_ends_whole_when_another_rung_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let source = clip(dir.path());
        let processes = Processes::new();
        let (ladder, mut streams) = start(
            &processes,
            "a1",
            &source,
            false,
            Window::default(),
            &ladder(),
        )
        .unwrap();
        assert_eq!(processes.len(), 1, "one ffmpeg for the whole ladder");
        // The 120p rung failed at once: its output is read and dropped.
        drop(streams.remove("120p"));
        let video = tokio::spawn(drain(streams.remove("180p").unwrap()));
        let audio = tokio::spawn(drain(streams.remove("audio").unwrap()));
        let sprite = streams
            .remove("thumbnails")
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(&sprite[..4], b"RIFF");
        assert_eq!(&sprite[8..12], b"WEBP");
        let poster = streams
            .remove(POSTER)
            .unwrap()
            .first_picture()
            .await
            .unwrap();
        assert_eq!(&poster[8..12], b"WEBP");
        assert_eq!(
            u32::from_le_bytes(poster[4..8].try_into().unwrap()) as usize + 8,
            poster.len(),
            "one whole picture"
        );
        let (frames, exit) = video.await.unwrap();
        assert_eq!(frames, 120, "4 s at 30 fps");
        exit.unwrap();
        let (packets, exit) = audio.await.unwrap();
        // 4 s of 48 kHz in 1024-sample frames, plus the encoder's priming.
        assert!((188..=190).contains(&packets), "{packets} AAC frames");
        exit.unwrap();
        drop(ladder);
    }

    /// Drains a stream's raw bytes.
    async fn bytes_of(mut stream: SharedStream) -> Vec<u8> {
        let mut all = Vec::new();
        while let Some(bytes) = stream.next_bytes().await.expect("ffmpeg succeeds") {
            all.extend_from_slice(&bytes);
        }
        all
    }

    #[tokio::test]
    async fn spans_make_their_own_storyboard_tiles_and_one_the_poster() {
        let dir = tempfile::tempdir().unwrap();
        let source = clip(dir.path());
        let processes = Processes::new();
        // Tiles every 1.5 s of 4 s: at 0, 1.5 and 3 s.
        let thumbnails = RungSpec::Thumbnails {
            tile_width: 160,
            tile_height: 90,
            interval_ms: 1500,
            duration_ms: 4000,
        };
        let size = super::super::rung::tile_bytes(&thumbnails);
        assert_eq!(size, 160 * 90 * 3 / 2);
        let span = |start_ms, end_ms| Window {
            start_ms,
            end_ms,
            chunk: true,
        };
        // 0–2 s: the tiles at 0 and 1.5 s, and the poster (1 s).
        let (first, mut streams) = start(
            &processes,
            "s1",
            &source,
            false,
            span(0, Some(2000)),
            &[ladder()[0].clone(), thumbnails.clone()],
        )
        .unwrap();
        let video = tokio::spawn(drain(streams.remove("180p").unwrap()));
        let poster = streams.remove(POSTER).expect("the poster is in this span");
        let (tiles, poster) = tokio::join!(
            bytes_of(streams.remove("thumbnails").unwrap()),
            poster.first_picture()
        );
        assert_eq!(tiles.len(), 2 * size, "two tiles");
        assert_eq!(&poster.unwrap()[8..12], b"WEBP");
        assert_eq!(video.await.unwrap().0, 60, "2 s at 30 fps");
        drop(first);
        // 2 s to the end: the tile at 3 s alone, no poster.
        let (second, mut streams) = start(
            &processes,
            "s2",
            &source,
            false,
            span(2000, None),
            std::slice::from_ref(&thumbnails),
        )
        .unwrap();
        assert!(!streams.contains_key(POSTER));
        let last = bytes_of(streams.remove("thumbnails").unwrap()).await;
        assert_eq!(last.len(), size, "one tile");
        drop(second);
        // Laid out on one sprite by an ffmpeg of its own.
        let pieces = vec![Bytes::from(tiles), Bytes::from(last)];
        let sprite =
            super::super::rung::storyboard_from_tiles(&processes, "s", &thumbnails, pieces)
                .await
                .unwrap();
        assert_eq!(&sprite[8..12], b"WEBP");
        // A span with no tile time and no poster starts nothing.
        let (_none, streams) = start(
            &processes,
            "s3",
            &source,
            false,
            span(3100, Some(4000)),
            std::slice::from_ref(&thumbnails),
        )
        .unwrap();
        assert!(streams.is_empty());
    }

    #[tokio::test]
    async fn a_stopped_shared_ffmpeg_fails_its_streams() {
        let dir = tempfile::tempdir().unwrap();
        let source = clip(dir.path());
        let processes = Processes::new();
        let (ladder, mut streams) = start(
            &processes,
            "a2",
            &source,
            false,
            Window::default(),
            &ladder(),
        )
        .unwrap();
        drop(ladder);
        let (_, exit) = drain(streams.remove("180p").unwrap()).await;
        assert!(
            exit.is_err(),
            "a rung fed by a stopped ffmpeg must not finish"
        );
        for _ in 0..100 {
            if processes.is_empty() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the shared ffmpeg was not reaped");
    }
}
