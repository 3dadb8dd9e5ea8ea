//! `Rung`: one rung of an asset's ladder — a video rendition at one height,
//! or the shared audio rendition — made by one ffmpeg child.
//!
//! ffmpeg decodes the original and writes fragmented MP4 (H.264 High with a
//! keyframe every 2 s exactly, so every rung's segments line up; or AAC-LC)
//! to a pipe; the bytes go through the fMP4 reader into the CMAF packager,
//! and each init segment, segment and media playlist is stored the moment it
//! exists. Nothing holds more than one fragment. The rung's renditions (their
//! metadata) go to the `Job`, which writes the multivariant playlist and the
//! MPD over every rung.
//!
//! Policy: the rung does its work in a task it owns; the task's end is
//! reported back as a message, and a failure makes the actor fail so that
//! its `Job` can decide whether to restart it. Stopping the rung aborts the
//! task, which drops the ffmpeg child: its process group is killed and reaped.

use std::ops::Range;

use bytes::Bytes;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use streamforge_protocols::media::{MediaKind, Sample, Track};
use streamforge_protocols::mp4::ReaderEvent;
use streamforge_protocols::package::{
    Checkpoint, FinishedRendition, MPD, MULTIVARIANT, PackageError, Packager, PackagerConfig,
};

use super::job::JobMsg;
use crate::assets::keys;
use crate::ffmpeg::{FfmpegError, Fmp4Child};
use crate::process::{Processes, piped};
use crate::storage::{Storage, StorageError};

/// Why a rung failed; it names the asset and the rung, and displays the
/// cause alone (the job says which rung gave up).
#[derive(Debug, thiserror::Error)]
#[error("{kind}")]
pub struct RungError {
    pub asset: String,
    pub rung: String,
    pub kind: RungErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum RungErrorKind {
    #[error(transparent)]
    Ffmpeg(#[from] FfmpegError),
    #[error("ffmpeg sent samples before its tracks")]
    SamplesBeforeTracks,
    #[error("ffmpeg produced no media: {stderr}")]
    NoMedia { stderr: String },
    #[error("ffmpeg made no image ({status}): {stderr}")]
    NoImage {
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("packaging: {0}")]
    Packaging(#[from] PackageError),
    #[error("storing {key}: {source}")]
    Store {
        key: String,
        #[source]
        source: StorageError,
    },
    /// An output name that makes no storage key.
    #[error("packager output name: {0}")]
    Key(#[source] StorageError),
    #[error("the job is gone: {0}")]
    JobGone(String),
    /// A picture ffmpeg wrote to a file could not be read back.
    #[error("reading ffmpeg's picture back: {0}")]
    ReadBack(#[source] std::io::Error),
    /// No original to read a chunk from.
    #[error("the original cannot be read by a chunk's ffmpeg")]
    NoSource,
    #[error("the encode made no header")]
    NoHeader,
    #[error("chunk {chunk} failed: {error}")]
    Chunk { chunk: i64, error: String },
    /// What failed every chunk of a span at once (its source, its ffmpeg).
    #[error("{0}")]
    Span(String),
    #[error("the chunks made different headers; encoding them again")]
    ChunksDiffer,
    #[error("a chunk's checkpoint: {0}")]
    Checkpoint(#[from] streamforge_protocols::package::CheckpointError),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// The checkpoint's segments were made with other headers than ffmpeg
    /// makes now: the rung starts over.
    #[error("the stored segments do not match this encode's headers; starting over")]
    CannotResume,
}

impl RungErrorKind {
    fn of(self, args: &RungArgs) -> RungError {
        RungError {
            asset: args.asset.clone(),
            rung: args.spec.name(),
            kind: self,
        }
    }
}

/// Stores `data` at `asset`'s media `path`.
pub(super) async fn store_media(
    storage: &Storage,
    asset: &str,
    path: &str,
    data: impl Into<streamforge_protocols::rope::Rope>,
) -> Result<(), RungErrorKind> {
    let key = keys::media(asset, path).map_err(RungErrorKind::Key)?;
    storage
        .put_rope(&key, data.into())
        .await
        .map_err(|source| RungErrorKind::Store {
            key: key.to_string(),
            source,
        })
}

/// What one rung produces: a video rendition or the audio rendition.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RungSpec {
    Video {
        /// Output height; never above the source's.
        height: u32,
        kbps: u32,
    },
    Audio {
        kbps: u32,
    },
    /// A poster and a storyboard (one sprite sheet of tiles every
    /// `interval_ms`, plus a WebVTT track pointing into it) for seek previews.
    Thumbnails {
        tile_width: u32,
        tile_height: u32,
        interval_ms: u64,
        duration_ms: u64,
    },
}

impl RungSpec {
    /// `360p`, `720p`, …, or `audio`; also the prefix of its files.
    pub fn name(&self) -> String {
        match self {
            RungSpec::Video { height, .. } => format!("{height}p"),
            RungSpec::Audio { .. } => "audio".to_owned(),
            RungSpec::Thumbnails { .. } => "thumbnails".to_owned(),
        }
    }
}

pub struct Rung;

pub struct RungArgs {
    pub asset: String,
    pub spec: RungSpec,
    /// What ffmpeg reads: the stored original's path, or the URL of an
    /// upload still arriving (a growing source that blocks until the bytes
    /// asked for are there).
    pub source: String,
    /// The source is an upload still arriving: probe briefly (see
    /// [`GROWING_INPUT`]) so that output starts with the first seconds.
    pub growing: bool,
    pub storage: Storage,
    pub processes: Processes,
    /// Where the finished renditions go.
    pub job: ActorRef<JobMsg>,
    /// A video rung of a long, complete source: encoded in chunks by any
    /// worker (see [`super::chunks`]), cut as the plan says.
    pub chunked: Option<(super::Transcoder, Vec<super::chunks::Cut>)>,
    /// This rung's output of the job's shared ffmpeg (one decode for the
    /// whole ladder), on its first start; a restarted rung runs its own.
    pub(super) shared: Option<super::shared::SharedStream>,
    /// The thumbnails rung's: the poster from that ffmpeg.
    pub(super) shared_poster: Option<super::shared::SharedStream>,
}

pub struct RungState {
    work: tokio::task::JoinHandle<()>,
}

pub enum RungMsg {
    Finished(Result<(), RungError>),
}

impl Actor for Rung {
    type Msg = RungMsg;
    type State = RungState;
    type Arguments = RungArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RungMsg>,
        mut args: RungArgs,
    ) -> Result<RungState, ActorProcessingErr> {
        let shared = args.shared.take();
        let shared_poster = args.shared_poster.take();
        let work = tokio::spawn(async move {
            let result = match run(&args, shared, shared_poster).await {
                Ok(renditions) => args
                    .job
                    .cast(JobMsg::RungDone {
                        rung: args.spec.name(),
                        renditions,
                    })
                    .map_err(|e| RungErrorKind::JobGone(e.to_string()).of(&args)),
                Err(kind) => Err(kind.of(&args)),
            };
            let _ = myself.cast(RungMsg::Finished(result));
        });
        Ok(RungState { work })
    }

    async fn handle(
        &self,
        myself: ActorRef<RungMsg>,
        message: RungMsg,
        _state: &mut RungState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RungMsg::Finished(Ok(())) => {
                myself.stop(Some("done".into()));
                Ok(())
            }
            RungMsg::Finished(Err(reason)) => Err(reason.into()),
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RungMsg>,
        state: &mut RungState,
    ) -> Result<(), ActorProcessingErr> {
        state.work.abort();
        Ok(())
    }
}

/// Input options for a growing source: stream parameters from the first
/// second (and megabyte) instead of five, since every second of analysis
/// waits for the upload (containers that describe their streams up front,
/// MP4/MOV, MKV, WebM, need no more); and a response cut short is resumed
/// from where it stopped instead of read as the end of the file.
pub const GROWING_INPUT: [&str; 10] = [
    "-analyzeduration",
    "1000000",
    "-probesize",
    "1000000",
    "-reconnect",
    "1",
    "-reconnect_on_network_error",
    "1",
    "-reconnect_delay_max",
    "10",
];

/// The ffmpeg arguments for `spec`: decode anything ffmpeg can, encode
/// H.264 High + AAC-LC with a keyframe every 2 s exactly (so every rung's
/// segments line up), fragmented MP4 on stdout.
pub(super) fn ffmpeg_args(
    spec: &RungSpec,
    source: &str,
    growing: bool,
    seek: Option<f64>,
    length: Option<f64>,
) -> Vec<String> {
    let mut out = strings(&["-hide_banner", "-nostdin", "-v", "error"]);
    if growing {
        out.extend(strings(&GROWING_INPUT));
    }
    if let Some(seconds) = seek {
        // Accurate input seeking: decoding starts at the source's keyframe
        // before and output at `seconds` exactly, which is a keyframe of
        // the rung (one every 2 s from 0), so segments go on seamlessly.
        out.push("-ss".into());
        out.push(format!("{seconds:.6}"));
    }
    out.push("-i".into());
    out.push(source.to_owned());
    if let Some(seconds) = length {
        // Frames before `seconds` of output only: a chunk ends where the
        // next one starts.
        out.push("-t".into());
        out.push(format!("{seconds:.6}"));
    }
    match spec {
        RungSpec::Video { height, .. } => {
            out.extend(strings(&["-map", "0:v:0", "-vf"]));
            out.push(scale_filter(*height));
        }
        RungSpec::Audio { .. } => out.extend(strings(&["-map", "0:a:0"])),
        RungSpec::Thumbnails { .. } => {}
    }
    out.extend(encode_args(spec));
    out.extend(strings(&FMP4_OUTPUT));
    out.push("pipe:1".into());
    out
}

pub(super) fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The scaling of a video rung to `height` on its short side (ffmpeg has
/// already applied any rotation, so a portrait source arrives portrait).
/// Never upscale; the other side keeps the aspect ratio, even for 4:2:0.
pub(super) fn scale_filter(height: u32) -> String {
    format!("scale=w='if(gte(iw,ih),-2,min({height},iw))':h='if(gte(iw,ih),min({height},ih),-2)'")
}

/// The encoder options of `spec` (its input mapped and scaled already).
pub(super) fn encode_args(spec: &RungSpec) -> Vec<String> {
    match spec {
        RungSpec::Video { kbps, .. } => {
            let mut out = strings(&[
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-profile:v",
                "high",
                "-pix_fmt",
                "yuv420p",
                "-force_key_frames",
                "expr:gte(t,n_forced*2)",
                "-sc_threshold",
                "0",
            ]);
            out.push("-b:v".into());
            out.push(format!("{kbps}k"));
            out.push("-maxrate".into());
            out.push(format!("{}k", kbps * 107 / 100));
            out.push("-bufsize".into());
            out.push(format!("{}k", kbps * 3 / 2));
            out
        }
        RungSpec::Audio { kbps } => {
            let mut out = strings(&["-c:a", "aac", "-ac", "2", "-ar", "48000"]);
            out.push("-b:a".into());
            out.push(format!("{kbps}k"));
            out
        }
        RungSpec::Thumbnails { .. } => Vec::new(),
    }
}

/// Fragmented MP4 that the packager reads as it comes.
pub(super) const FMP4_OUTPUT: [&str; 6] = [
    "-f",
    "mp4",
    "-movflags",
    "frag_keyframe+empty_moov+default_base_moof",
    // A fragment at least every half second, not only at keyframes: the
    // packager sees each keyframe (and so closes each segment) half a
    // second after it is encoded instead of one GOP later.
    "-frag_duration",
    "500000",
];

/// Where a rung's fragmented MP4 comes from: an ffmpeg of its own, or its
/// output of a shared ffmpeg.
pub(super) enum Encoder {
    Own(Box<Fmp4Child>),
    Shared(super::shared::SharedStream),
}

impl Encoder {
    pub(super) async fn next(&mut self) -> Result<Option<ReaderEvent>, crate::ffmpeg::FfmpegError> {
        match self {
            Encoder::Own(child) => child.next().await,
            Encoder::Shared(stream) => stream.next().await,
        }
    }

    pub(super) async fn finish(self) -> Result<String, crate::ffmpeg::FfmpegError> {
        match self {
            Encoder::Own(child) => child.finish().await,
            Encoder::Shared(stream) => stream.finish().await,
        }
    }
}

async fn run(
    args: &RungArgs,
    shared: Option<super::shared::SharedStream>,
    shared_poster: Option<super::shared::SharedStream>,
) -> Result<Vec<FinishedRendition>, RungErrorKind> {
    let config = rung_packaging(&args.asset, &args.spec);
    // The job shares its ffmpeg only with rungs that start from zero.
    let checkpoint = match shared {
        Some(_) => None,
        None => Resumable::load(args, &config).await,
    };
    if let Some(done) = checkpoint.as_ref().filter(|c| c.checkpoint.is_complete()) {
        // Made before the job was interrupted: only its renditions again.
        return done.rebuild(args, &config).await;
    }
    if let Some((transcoder, plan)) = &args.chunked {
        return super::chunks::run_chunked(args, transcoder, plan).await;
    }
    if let RungSpec::Thumbnails { .. } = args.spec {
        let pictures = Pictures {
            asset: &args.asset,
            source: &args.source,
            growing: args.growing,
            processes: &args.processes,
            storage: &args.storage,
            sprite: shared,
            poster: shared_poster,
        };
        thumbnails(pictures, &args.spec, || {
            let _ = args.job.cast(JobMsg::PosterReady);
        })
        .await?;
        return Ok(Vec::new());
    }
    let resume = checkpoint.as_ref().and_then(|c| c.plan(args, &config));
    let seek = resume.map(|r| r.seek);
    let mut ffmpeg = match shared {
        Some(stream) => Encoder::Shared(stream),
        None => Encoder::Own(Box::new(Fmp4Child::spawn(
            &args.processes,
            &format!("ffmpeg {} {}", args.asset, args.spec.name()),
            ffmpeg_args(&args.spec, &args.source, args.growing, seek, None),
            false,
        )?)),
    };
    let mut tracks: Option<Vec<Track>> = None;
    let mut packager: Option<Packager> = None;
    // Decode times go on from the checkpoint's last segment.
    let (skip_below, shift) = resume.map_or((0, 0), |r| (r.skip_below, r.shift));
    let mut segments_seen = 0;
    let mut reported = false;
    while let Some(event) = ffmpeg.next().await? {
        match event {
            ReaderEvent::Tracks(found) => tracks = Some(found),
            ReaderEvent::Sample(mut sample) => {
                if packager.is_none() {
                    let mut tracks = tracks.take().ok_or(RungErrorKind::SamplesBeforeTracks)?;
                    for track in &mut tracks {
                        track.presentation_offset = encoder_delay(track, &sample);
                    }
                    packager = Some(match (&checkpoint, resume) {
                        (Some(resumable), Some(_)) => {
                            resumable.check(args, &config, &tracks).await?;
                            Packager::resume(config.clone(), &tracks, &resumable.checkpoint)?
                        }
                        _ => Packager::new(config.clone(), &tracks)?,
                    });
                }
                if sample.dts < skip_below {
                    continue;
                }
                sample.dts += shift;
                if let Some(packager) = packager.as_mut() {
                    packager.push(sample)?;
                }
            }
        }
        if let Some(packager) = packager.as_mut() {
            store_outputs(&args.storage, &args.asset, packager).await?;
            let done = packager.segments_done();
            if done > segments_seen {
                segments_seen = done;
                store_progress(&args.storage, &args.asset, packager).await?;
                Resumable::store(args, &config, packager).await?;
                let renditions = packager.progress_renditions();
                if !reported && renditions.len() == packager.tracks_len() {
                    reported = true;
                    let _ = args.job.cast(JobMsg::RungProgress {
                        rung: args.spec.name(),
                        renditions,
                    });
                }
            }
        }
    }
    let stderr = ffmpeg.finish().await?;
    let mut packager = packager.ok_or(RungErrorKind::NoMedia { stderr })?;
    packager.finish(crate::clock::now())?;
    store_outputs(&args.storage, &args.asset, &mut packager).await?;
    Resumable::store_finished(args, &config, &packager).await?;
    Ok(packager.into_renditions())
}

/// A rung's progress in storage (`{rendition}/checkpoint`, written after
/// each segment), so that a rung run again — a worker killed and its job
/// claimed elsewhere, or ffmpeg restarted — goes on after the last stored
/// segment instead of from zero.
///
/// Video seeks to the end of that segment, a keyframe of the rung. Audio
/// cannot start there: a restarted AAC encoder's first frame is priming,
/// and the frame at the seam must overlap real audio on both sides to sound
/// the same. So ffmpeg starts [`AUDIO_PRE_ROLL`] frames early, and the frames
/// before the seam are dropped. The packet made from input `t` then lands
/// where it did in the first run: one frame later, at `t + 1024`, since the
/// first run's priming frame is at 0.
pub(super) struct Resumable {
    checkpoint: Checkpoint,
}

/// AAC frames an audio rung encodes again before its seam and drops: the
/// restarted encoder's priming frame, and one whose overlap gives the frame
/// at the seam real audio on both sides.
const AUDIO_PRE_ROLL: u64 = 2;
/// Samples per AAC-LC frame.
const AAC_FRAME: u64 = 1024;
/// A video rung's keyframe interval (`-force_key_frames`).
const KEYFRAME_EVERY_S: f64 = 2.0;

/// Where a resumed rung's ffmpeg starts and what becomes of its samples:
/// decode times below `skip_below` are dropped, the others move by `shift`
/// (in the track's timescale).
#[derive(Clone, Copy, Debug)]
struct Resume {
    seek: f64,
    skip_below: i64,
    shift: i64,
}

impl Resumable {
    /// The rendition a rung resumes: its video or its audio (thumbnails
    /// start over).
    fn rendition(args: &RungArgs, config: &PackagerConfig) -> Option<String> {
        resumable_rendition(&args.spec, config)
    }

    fn key(args: &RungArgs, config: &PackagerConfig) -> Option<crate::storage::ObjectKey> {
        checkpoint_key(&args.asset, &args.spec, config)
    }

    /// Where ffmpeg starts again, and how its samples are placed.
    fn plan(&self, args: &RungArgs, config: &PackagerConfig) -> Option<Resume> {
        let rendition = Self::rendition(args, config)?;
        let end = self.checkpoint.end_dts(&rendition)?;
        let timescale = u64::from(self.checkpoint.timescale(&rendition)?.max(1));
        // Ticks of pre-roll: AAC frames are 1024 samples at the 48 kHz the
        // rung encodes.
        let pre_roll = match args.spec {
            RungSpec::Audio { .. } => (AUDIO_PRE_ROLL * AAC_FRAME * timescale / 48_000).min(end),
            _ => 0,
        };
        let seek = match args.spec {
            // The keyframe on the rung's 2 s grid that the last segment
            // ended on: seeking to its exact time (32.032 s at 29.97 fps)
            // would move every later forced keyframe by a frame.
            RungSpec::Video { .. } => {
                (end as f64 / timescale as f64 / KEYFRAME_EVERY_S).round() * KEYFRAME_EVERY_S
            }
            _ => (end - pre_roll) as f64 / timescale as f64,
        };
        Some(Resume {
            seek,
            skip_below: i64::try_from(pre_roll).ok()?,
            shift: i64::try_from(end - pre_roll).ok()?,
        })
    }

    /// The stored checkpoint, if there is a usable one.
    async fn load(args: &RungArgs, config: &PackagerConfig) -> Option<Resumable> {
        let key = Self::key(args, config)?;
        let text = match args.storage.read_all(&key).await {
            Ok(text) => text,
            Err(StorageError::NotFound(_)) => return None,
            Err(err) => {
                tracing::warn!(asset = %args.asset, %err, "cannot read a rung's checkpoint; starting over");
                return None;
            }
        };
        match Checkpoint::parse(&String::from_utf8_lossy(&text)) {
            Ok(checkpoint) => {
                tracing::info!(asset = %args.asset, rung = %args.spec.name(), segments = checkpoint.segments(), "resuming after the stored segments");
                Some(Resumable { checkpoint })
            }
            Err(err) => {
                tracing::warn!(asset = %args.asset, %err, "a rung's checkpoint is damaged; starting over");
                None
            }
        }
    }

    /// Checks that `tracks` make the headers stored with the segments
    /// (same codec configuration, timescale and edit list).
    async fn check(
        &self,
        args: &RungArgs,
        config: &PackagerConfig,
        tracks: &[Track],
    ) -> Result<(), RungErrorKind> {
        for header in Packager::headers(config, tracks)? {
            let key = keys::media(&args.asset, &header.path).map_err(RungErrorKind::Key)?;
            let stored = args.storage.read_all(&key).await.ok();
            if stored.as_ref() != Some(&header.data.to_bytes()) {
                Self::clear(args, config).await;
                return Err(RungErrorKind::CannotResume);
            }
        }
        Ok(())
    }

    async fn store(
        args: &RungArgs,
        config: &PackagerConfig,
        packager: &Packager,
    ) -> Result<(), RungErrorKind> {
        Self::save(args, config, packager.checkpoint()).await
    }

    /// The rung finished: its checkpoint says so, and a job run again
    /// (its node died before the asset was ready) takes the renditions
    /// from it instead of encoding again. The job deletes it once the
    /// asset is ready.
    pub(super) async fn store_finished(
        args: &RungArgs,
        config: &PackagerConfig,
        packager: &Packager,
    ) -> Result<(), RungErrorKind> {
        Self::save(args, config, packager.checkpoint().completed()).await
    }

    async fn save(
        args: &RungArgs,
        config: &PackagerConfig,
        checkpoint: Checkpoint,
    ) -> Result<(), RungErrorKind> {
        let Some(key) = Self::key(args, config) else {
            return Ok(());
        };
        args.storage
            .put(&key, Bytes::from(checkpoint.render()))
            .await
            .map_err(|source| RungErrorKind::Store {
                key: key.to_string(),
                source,
            })
    }

    /// A finished rung's renditions, from its complete checkpoint and the
    /// stored header; its VOD playlists are written again.
    async fn rebuild(
        &self,
        args: &RungArgs,
        config: &PackagerConfig,
    ) -> Result<Vec<FinishedRendition>, RungErrorKind> {
        let rendition = Self::rendition(args, config).ok_or(RungErrorKind::CannotResume)?;
        let path = format!("{rendition}/{}", streamforge_protocols::package::INIT);
        let key = keys::media(&args.asset, &path).map_err(RungErrorKind::Key)?;
        let header = args
            .storage
            .read_all(&key)
            .await
            .map_err(|source| RungErrorKind::Store {
                key: key.to_string(),
                source,
            })?;
        let tracks = tracks_of(&header)?;
        let mut packager = Packager::resume(config.clone(), &tracks, &self.checkpoint)?;
        packager.finish(crate::clock::now())?;
        store_outputs(&args.storage, &args.asset, &mut packager).await?;
        Ok(packager.into_renditions())
    }

    /// The rung cannot resume: its checkpoint goes.
    async fn clear(args: &RungArgs, config: &PackagerConfig) {
        if let Some(key) = Self::key(args, config)
            && let Err(err) = args.storage.delete(&key).await
        {
            tracing::warn!(asset = %args.asset, %err, "cannot delete a rung's checkpoint");
        }
    }
}

/// A rung's checkpoint, beside its segments.
const CHECKPOINT: &str = "checkpoint";

/// The tracks a stored `init.mp4` describes.
pub(super) fn tracks_of(header: &Bytes) -> Result<Vec<Track>, RungErrorKind> {
    let mut reader = streamforge_protocols::mp4::FragmentedReader::new();
    reader.feed(header);
    match reader.poll() {
        Ok(Some(ReaderEvent::Tracks(tracks))) => Ok(tracks),
        _ => Err(RungErrorKind::NoHeader),
    }
}

/// The rendition whose progress rung `spec` keeps: its video or its
/// audio (thumbnails start over).
fn resumable_rendition(spec: &RungSpec, config: &PackagerConfig) -> Option<String> {
    match spec {
        RungSpec::Video { .. } => Some(config.naming.rendition(MediaKind::Video, 1)),
        RungSpec::Audio { .. } => Some(config.naming.rendition(MediaKind::Audio, 1)),
        RungSpec::Thumbnails { .. } => None,
    }
}

fn checkpoint_key(
    asset: &str,
    spec: &RungSpec,
    config: &PackagerConfig,
) -> Option<crate::storage::ObjectKey> {
    let rendition = resumable_rendition(spec, config)?;
    keys::media(asset, &format!("{rendition}/{CHECKPOINT}")).ok()
}

/// Whether rung `spec` of `asset` has stored segments to go on from (or
/// may have: a checkpoint that cannot be looked up counts as one).
pub(super) async fn has_checkpoint(storage: &Storage, asset: &str, spec: &RungSpec) -> bool {
    let Some(key) = checkpoint_key(asset, spec, &rung_packaging(asset, spec)) else {
        return false;
    };
    !matches!(storage.head(&key).await, Ok(None))
}

/// Deletes the checkpoint of rung `spec` of `asset` (the asset is ready).
pub(super) async fn forget_checkpoint(storage: &Storage, asset: &str, spec: &RungSpec) {
    let Some(key) = checkpoint_key(asset, spec, &rung_packaging(asset, spec)) else {
        return;
    };
    if let Err(err) = storage.delete(&key).await {
        tracing::warn!(%asset, %err, "cannot delete a rung's checkpoint");
    }
}

/// Where the rung's video starts in its media time. ffmpeg's fragmented
/// MP4 has no edit list, so it moves the track to start at decode time 0
/// and x264's first picture shows one reorder delay late (its composition
/// offset), after the audio it belongs with. Stated as the track's edit
/// list, the picture is shown at presentation time 0 again, in sync with
/// the audio as in the source (ISO/IEC 14496-12 §8.6.6; browsers' MSE,
/// Safari and ffmpeg apply a video edit list). The AAC encoder's 1024
/// priming samples stay at time 0 (21 ms at 48 kHz): Chromium does not
/// shift audio by its edit list, so one there would only disagree between
/// players.
pub(super) fn encoder_delay(track: &Track, first: &Sample) -> u64 {
    if track.kind() == MediaKind::Video && first.track == track.id {
        u64::try_from(first.cts_offset).unwrap_or(0)
    } else {
        0
    }
}

/// Packaging for one rung: its files under `<rung>-v1/` or `audio-a1/`, so
/// that every rung writes into the asset's one media directory.
pub fn rung_packaging(asset: &str, spec: &RungSpec) -> PackagerConfig {
    let mut config = PackagerConfig {
        presentation_id: asset.to_owned(),
        ..PackagerConfig::default()
    };
    let prefix = format!("{}-", spec.name());
    config.naming.video_prefix = format!("{prefix}{}", config.naming.video_prefix);
    config.naming.audio_prefix = format!("{prefix}{}", config.naming.audio_prefix);
    config
}

/// Stores each rendition's `EVENT` playlist so far: the rung is playable
/// while it is still being made (a preview of an upload still arriving).
async fn store_progress(
    storage: &Storage,
    asset: &str,
    packager: &Packager,
) -> Result<(), RungErrorKind> {
    for output in packager.progress_playlists()? {
        store_media(storage, asset, &output.path, output.data).await?;
    }
    Ok(())
}

/// Stores what the packager has ready, except its own multivariant playlist
/// and MPD: the job writes those over every rung.
pub(super) async fn store_outputs(
    storage: &Storage,
    asset: &str,
    packager: &mut Packager,
) -> Result<(), RungErrorKind> {
    while let Some(output) = packager.poll_output() {
        if output.path == MULTIVARIANT || output.path == MPD {
            continue;
        }
        store_media(storage, asset, &output.path, output.data).await?;
    }
    Ok(())
}

/// Tiles per row of the storyboard sprite.
const STORYBOARD_COLUMNS: u64 = 10;

/// Runs ffmpeg with `args` and returns its standard output (one image).
pub(super) async fn ffmpeg_image(
    processes: &Processes,
    name: &str,
    args: &[String],
) -> Result<Bytes, RungErrorKind> {
    ffmpeg_image_of(processes, name, args, Vec::new()).await
}

/// Runs ffmpeg with `args`, `input` written to its standard input, and
/// returns its standard output (one image).
async fn ffmpeg_image_of(
    processes: &Processes,
    name: &str,
    args: &[String],
    input: Vec<Bytes>,
) -> Result<Bytes, RungErrorKind> {
    let mut command = piped("ffmpeg");
    command.args(args);
    if !input.is_empty() {
        command.stdin(std::process::Stdio::piped());
    }
    let mut child = processes.spawn(name, command).map_err(FfmpegError::Start)?;
    let stdin = child.take_stdin();
    let feed = async move {
        use tokio::io::AsyncWriteExt;
        if let Some(mut stdin) = stdin {
            for piece in input {
                // ffmpeg failing early closes its end: its status says why.
                if stdin.write_all(&piece).await.is_err() {
                    break;
                }
            }
        }
    };
    let ((), output) = tokio::join!(feed, child.output());
    let output = output.map_err(FfmpegError::Wait)?;
    let (status, image, errors) = (output.status, output.stdout, output.stderr);
    if !status.success() || image.is_empty() {
        return Err(RungErrorKind::NoImage {
            status,
            stderr: String::from_utf8_lossy(&errors).trim().to_owned(),
        });
    }
    Ok(Bytes::from(image))
}

/// `HH:MM:SS.mmm` for WebVTT.
fn vtt_time(ms: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// The WebVTT track of a storyboard: one cue per tile, pointing at the
/// tile's rectangle in the sprite (`#xywh=`, the convention players use).
pub fn storyboard_vtt(
    sprite: &str,
    tile_width: u32,
    tile_height: u32,
    interval_ms: u64,
    duration_ms: u64,
) -> String {
    let mut vtt = String::from("WEBVTT\n");
    let tiles = duration_ms.div_ceil(interval_ms.max(1));
    for i in 0..tiles {
        let start = i * interval_ms;
        let end = ((i + 1) * interval_ms).min(duration_ms);
        let x = (i % STORYBOARD_COLUMNS) * u64::from(tile_width);
        let y = (i / STORYBOARD_COLUMNS) * u64::from(tile_height);
        vtt.push_str(&format!(
            "\n{} --> {}\n{sprite}#xywh={x},{y},{tile_width},{tile_height}\n",
            vtt_time(start),
            vtt_time(end)
        ));
    }
    vtt
}

/// The filter that makes the storyboard of `spec` (a `Thumbnails` rung)
/// from the video: one tile every interval, all tiles on one sprite.
pub(super) fn storyboard_filter(spec: &RungSpec) -> Option<String> {
    let RungSpec::Thumbnails {
        tile_width,
        tile_height,
        interval_ms,
        ..
    } = *spec
    else {
        return None;
    };
    Some(format!(
        "fps=fps=1000/{interval_ms}:round=up,scale={tile_width}:{tile_height},{}",
        tile_layout(spec)
    ))
}

/// The `tile` filter that lays every tile of `spec`'s storyboard out on
/// its sprite, [`STORYBOARD_COLUMNS`] to a row.
fn tile_layout(spec: &RungSpec) -> String {
    let tiles = tile_slots(spec, 0, None).end;
    let rows = tiles.div_ceil(STORYBOARD_COLUMNS).max(1);
    format!("tile={STORYBOARD_COLUMNS}x{rows}")
}

/// The storyboard tiles (their numbers, from 0) whose times fall in
/// `start_ms..end_ms` (to the end when `None`): tile `k` shows the source
/// at `k` intervals.
pub(super) fn tile_slots(spec: &RungSpec, start_ms: u64, end_ms: Option<u64>) -> Range<u64> {
    let RungSpec::Thumbnails {
        interval_ms,
        duration_ms,
        ..
    } = *spec
    else {
        return 0..0;
    };
    let interval = interval_ms.max(1);
    let total = duration_ms.div_ceil(interval).max(1);
    let first = start_ms.div_ceil(interval).min(total);
    let end = end_ms.map_or(total, |end| end.div_ceil(interval).min(total));
    first..end.max(first)
}

/// The filter that makes `slots` (a span's tiles, see [`tile_slots`]) from
/// the decode of `window` (whose times start at 0), as the whole source's
/// decode makes them ([`storyboard_filter`]: tile `k` is the picture on
/// screen at `k` intervals, `fps` rounding up): `fps`'s clock starts at the
/// first tile's time, and the span's end ends the branch (its last tile is
/// the span's last picture when no later one comes before it). `None` when
/// no tile falls in the span.
pub(super) fn tiles_filter(
    spec: &RungSpec,
    window: &super::shared::Window,
    slots: &Range<u64>,
) -> Option<String> {
    let RungSpec::Thumbnails {
        tile_width,
        tile_height,
        interval_ms,
        ..
    } = *spec
    else {
        return None;
    };
    if slots.is_empty() {
        return None;
    }
    let ms = super::shared::seconds;
    let first = (slots.start * interval_ms).saturating_sub(window.start_ms);
    let end = window
        .end_ms
        .map(|end| format!(":end={}", ms(end.saturating_sub(window.start_ms))))
        .unwrap_or_default();
    Some(format!(
        "trim=start={}{end},setpts=PTS-STARTPTS,fps=fps=1000/{interval_ms}:round=up:eof_action=pass,scale={tile_width}:{tile_height}",
        ms(first)
    ))
}

/// A span's storyboard tiles: raw `yuv420p` pictures, one after another
/// (each picture once: no frame made up to fill time between them).
pub(super) const TILES_OUTPUT: [&str; 8] = [
    "-fps_mode",
    "passthrough",
    "-c:v",
    "rawvideo",
    "-pix_fmt",
    "yuv420p",
    "-f",
    "rawvideo",
];

/// The bytes of one raw tile of `spec` (as [`TILES_OUTPUT`] writes it).
pub(super) fn tile_bytes(spec: &RungSpec) -> usize {
    match *spec {
        RungSpec::Thumbnails {
            tile_width,
            tile_height,
            ..
        } => {
            let (w, h) = (tile_width as usize, tile_height as usize);
            w * h + 2 * (w.div_ceil(2) * h.div_ceil(2))
        }
        _ => 0,
    }
}

/// The storyboard sprite of `spec` laid out from its raw `tiles` (every
/// tile, in order, as [`TILES_OUTPUT`] wrote them).
pub(super) async fn storyboard_from_tiles(
    processes: &Processes,
    asset: &str,
    spec: &RungSpec,
    tiles: Vec<Bytes>,
) -> Result<Bytes, RungErrorKind> {
    let RungSpec::Thumbnails {
        tile_width,
        tile_height,
        ..
    } = *spec
    else {
        return Err(RungErrorKind::NoSource);
    };
    let mut args = strings(&["-hide_banner", "-nostdin", "-v", "error"]);
    args.extend(strings(&["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s"]));
    args.push(format!("{tile_width}x{tile_height}"));
    args.extend(strings(&["-framerate", "1", "-i", "pipe:0", "-vf"]));
    args.push(tile_layout(spec));
    args.extend(strings(&STORYBOARD_OUTPUT));
    args.push("pipe:1".into());
    let name = format!("ffmpeg {asset} storyboard from tiles");
    ffmpeg_image_of(processes, &name, &args, tiles).await
}

/// The storyboard sprite's encoding: one WebP picture.
pub(super) const STORYBOARD_OUTPUT: [&str; 8] = [
    "-frames:v",
    "1",
    "-c:v",
    "libwebp",
    "-quality",
    "70",
    "-f",
    "image2pipe",
];

/// Where the poster is taken: 1 s in, or the middle of a shorter clip.
pub(super) fn poster_at_ms(duration_ms: u64) -> u64 {
    (duration_ms / 2).min(1000)
}

/// The poster's filter after its time: at most 720 lines.
pub(super) const POSTER_SCALE: &str = "scale=w=-2:h='min(720,ih)'";

/// The poster's encoding: one WebP picture.
pub(super) const POSTER_OUTPUT: [&str; 8] = [
    "-frames:v",
    "1",
    "-c:v",
    "libwebp",
    "-quality",
    "80",
    "-f",
    "image2pipe",
];

/// What the thumbnails read and where they go.
pub(super) struct Pictures<'a> {
    pub asset: &'a str,
    pub source: &'a str,
    pub growing: bool,
    pub processes: &'a Processes,
    pub storage: &'a Storage,
    /// The storyboard as the shared ladder's ffmpeg makes it, if it does.
    pub(super) sprite: Option<super::shared::SharedStream>,
    /// The poster as the shared ladder's ffmpeg makes it, if it does.
    pub(super) poster: Option<super::shared::SharedStream>,
}

/// The poster from an ffmpeg of its own: a seek to [`poster_at_ms`], or
/// the first frame when the seek finds none.
pub(super) async fn own_poster(
    processes: &Processes,
    asset: &str,
    source: &str,
    input_options: &[String],
    duration_ms: u64,
) -> Result<Bytes, RungErrorKind> {
    let poster_at = poster_at_ms(duration_ms);
    let mut poster_args = strings(&["-hide_banner", "-nostdin", "-v", "error"]);
    poster_args.extend(input_options.iter().cloned());
    poster_args.push("-ss".into());
    poster_args.push(super::shared::seconds(poster_at));
    poster_args.extend(strings(&["-i", source, "-vf", POSTER_SCALE]));
    poster_args.extend(strings(&POSTER_OUTPUT));
    poster_args.push("pipe:1".into());
    let name = format!("ffmpeg {asset} poster");
    match ffmpeg_image(processes, &name, &poster_args).await {
        Ok(poster) => Ok(poster),
        // A seek may land past the last keyframe a short or badly indexed
        // file has (MPEG-TS seeks by guesswork): take the first frame then.
        Err(reason) => {
            tracing::debug!(%asset, %reason, "poster at 1 s failed; using the first frame");
            let from_start: Vec<String> = poster_args
                .iter()
                .enumerate()
                .filter(|(i, a)| {
                    *a != "-ss" && (*i == 0 || poster_args.get(i - 1).is_none_or(|p| p != "-ss"))
                })
                .map(|(_, a)| a.clone())
                .collect();
            ffmpeg_image(processes, &name, &from_start).await
        }
    }
}

/// The poster (WebP, at most 720 lines, from 1 s in or the middle of a
/// short clip), then the storyboard sprite of `spec` (a `Thumbnails` rung)
/// with its WebVTT track; `poster_ready` runs once the poster is stored.
pub(super) async fn thumbnails(
    args: Pictures<'_>,
    spec: &RungSpec,
    poster_ready: impl FnOnce(),
) -> Result<(), RungErrorKind> {
    let RungSpec::Thumbnails { duration_ms, .. } = *spec else {
        return Ok(());
    };
    let source = args.source.to_owned();
    let input_options: Vec<String> = if args.growing {
        strings(&GROWING_INPUT)
    } else {
        Vec::new()
    };
    // From the shared decode when the ladder's ffmpeg makes it (its bytes
    // come as soon as it is encoded, long before that ffmpeg ends); from a
    // small ffmpeg of its own otherwise, or if the shared one made none.
    let poster_stage = async {
        let shared = match args.poster {
            Some(stream) => match stream.first_picture().await {
                Ok(poster) => Some(poster),
                Err(err) => {
                    tracing::debug!(asset = %args.asset, %err, "no poster from the shared ffmpeg; making it apart");
                    None
                }
            },
            None => None,
        };
        let poster = match shared {
            Some(poster) => poster,
            None => {
                own_poster(
                    args.processes,
                    args.asset,
                    &source,
                    &input_options,
                    duration_ms,
                )
                .await?
            }
        };
        // The poster first, on its own: it is there seconds into an
        // upload, long before the storyboard (which needs the whole source).
        store_media(args.storage, args.asset, "poster.webp", poster).await?;
        poster_ready();
        Ok::<(), RungErrorKind>(())
    };
    // The shared storyboard is read at the same time: ffmpeg writes it when
    // the source ends, and must not wait on its pipe while the poster is
    // still awaited (a shared poster that never comes ends with ffmpeg).
    let shared_sprite = async {
        match args.sprite {
            Some(stream) => Ok::<_, RungErrorKind>(Some(stream.collect().await?)),
            None => Ok(None),
        }
    };
    let ((), shared_sprite) = tokio::try_join!(poster_stage, shared_sprite)?;
    let sprite = match shared_sprite {
        Some(sprite) => sprite,
        None => {
            let mut sprite_args = strings(&["-hide_banner", "-nostdin", "-v", "error"]);
            sprite_args.extend(input_options.iter().cloned());
            sprite_args.extend(strings(&["-i", &source, "-vf"]));
            sprite_args.push(storyboard_filter(spec).unwrap_or_default());
            sprite_args.extend(strings(&STORYBOARD_OUTPUT));
            sprite_args.push("pipe:1".into());
            let name = format!("ffmpeg {} storyboard", args.asset);
            ffmpeg_image(args.processes, &name, &sprite_args).await?
        }
    };
    store_storyboard(args.storage, args.asset, spec, sprite).await
}

/// Stores the storyboard `sprite` of `spec` (a `Thumbnails` rung) with its
/// WebVTT track.
pub(super) async fn store_storyboard(
    storage: &Storage,
    asset: &str,
    spec: &RungSpec,
    sprite: Bytes,
) -> Result<(), RungErrorKind> {
    let RungSpec::Thumbnails {
        tile_width,
        tile_height,
        interval_ms,
        duration_ms,
    } = *spec
    else {
        return Ok(());
    };
    let vtt = storyboard_vtt(
        "storyboard.webp",
        tile_width,
        tile_height,
        interval_ms,
        duration_ms,
    );
    for (name, bytes) in [
        ("storyboard.webp", sprite),
        ("storyboard.vtt", Bytes::from(vtt)),
    ] {
        store_media(storage, asset, name, bytes).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::storyboard_vtt;

    #[test]
    fn storyboard_cues_cover_the_duration_tile_by_tile() {
        let vtt = storyboard_vtt("s.webp", 160, 90, 2000, 25_500);
        let cues: Vec<&str> = vtt.split("\n\n").skip(1).collect();
        assert_eq!(cues.len(), 13);
        assert_eq!(
            cues[0],
            "00:00:00.000 --> 00:00:02.000\ns.webp#xywh=0,0,160,90"
        );
        assert_eq!(
            cues[10],
            "00:00:20.000 --> 00:00:22.000\ns.webp#xywh=0,90,160,90"
        );
        assert_eq!(
            cues[12].lines().next(),
            Some("00:00:24.000 --> 00:00:25.500")
        );
        assert!(vtt.starts_with("WEBVTT\n"));
    }
}
