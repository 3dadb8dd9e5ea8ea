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

use std::path::PathBuf;
use std::time::SystemTime;

use bytes::Bytes;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use streamforge_protocols::hls::UnixMillis;
use streamforge_protocols::mp4::{FragmentedReader, ReaderEvent};
use streamforge_protocols::package::{
    FinishedRendition, MPD, MULTIVARIANT, Packager, PackagerConfig,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

use super::job::JobMsg;
use crate::process::{Processes, piped};
use crate::storage::{ObjectKey, Storage};

/// Bytes read from ffmpeg's stdout per read.
const READ_CHUNK: usize = 256 * 1024;
/// Lines of ffmpeg's stderr kept for the failure reason.
const STDERR_TAIL: usize = 8;

/// What one rung produces: a video rendition or the audio rendition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RungSpec {
    Video {
        /// Output height; never above the source's.
        height: u32,
        kbps: u32,
    },
    Audio {
        kbps: u32,
    },
}

impl RungSpec {
    /// `360p`, `720p`, …, or `audio`; also the prefix of its files.
    pub fn name(&self) -> String {
        match self {
            RungSpec::Video { height, .. } => format!("{height}p"),
            RungSpec::Audio { .. } => "audio".to_owned(),
        }
    }
}

pub struct Rung;

pub struct RungArgs {
    pub asset: String,
    pub spec: RungSpec,
    pub source: PathBuf,
    pub storage: Storage,
    pub processes: Processes,
    /// Where the finished renditions go.
    pub job: ActorRef<JobMsg>,
}

pub struct RungState {
    work: tokio::task::JoinHandle<()>,
}

pub enum RungMsg {
    Finished(Result<(), String>),
}

impl Actor for Rung {
    type Msg = RungMsg;
    type State = RungState;
    type Arguments = RungArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RungMsg>,
        args: RungArgs,
    ) -> Result<RungState, ActorProcessingErr> {
        let work = tokio::spawn(async move {
            let result = match run(&args).await {
                Ok(renditions) => args
                    .job
                    .cast(JobMsg::RungDone {
                        rung: args.spec.name(),
                        renditions,
                    })
                    .map_err(|e| format!("the job is gone: {e}")),
                Err(reason) => Err(reason),
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

/// The ffmpeg arguments for `spec`: decode anything ffmpeg can, encode
/// H.264 High + AAC-LC with a keyframe every 2 s exactly (so every rung's
/// segments line up), fragmented MP4 on stdout.
fn ffmpeg_args(args: &RungArgs) -> Vec<String> {
    let mut out: Vec<String> = ["-hide_banner", "-nostdin", "-v", "error", "-i"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    out.push(args.source.display().to_string());
    match &args.spec {
        RungSpec::Video { height, kbps } => {
            out.extend(
                [
                    "-map",
                    "0:v:0",
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
                ]
                .map(String::from),
            );
            // Never upscale; keep the width even for 4:2:0.
            out.push("-vf".into());
            out.push(format!("scale=w=-2:h='min({height},ih)'"));
            out.push("-b:v".into());
            out.push(format!("{kbps}k"));
            out.push("-maxrate".into());
            out.push(format!("{}k", kbps * 107 / 100));
            out.push("-bufsize".into());
            out.push(format!("{}k", kbps * 3 / 2));
        }
        RungSpec::Audio { kbps } => {
            out.extend(
                ["-map", "0:a:0", "-c:a", "aac", "-ac", "2", "-ar", "48000"].map(String::from),
            );
            out.push("-b:a".into());
            out.push(format!("{kbps}k"));
        }
    }
    out.extend(
        [
            "-f",
            "mp4",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
            "pipe:1",
        ]
        .map(String::from),
    );
    out
}

async fn run(args: &RungArgs) -> Result<Vec<FinishedRendition>, String> {
    let mut command = piped("ffmpeg");
    command.args(ffmpeg_args(args));
    let mut child = args
        .processes
        .spawn(
            &format!("ffmpeg {} {}", args.asset, args.spec.name()),
            command,
        )
        .map_err(|e| format!("cannot start ffmpeg: {e}"))?;
    let mut stdout = child
        .take_stdout()
        .ok_or_else(|| "ffmpeg has no stdout".to_owned())?;
    let stderr = child.take_stderr();
    let tail = tokio::spawn(async move {
        let mut lines = Vec::new();
        if let Some(stderr) = stderr {
            let mut reader = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if lines.len() == STDERR_TAIL {
                    lines.remove(0);
                }
                lines.push(line);
            }
        }
        lines
    });

    let mut reader = FragmentedReader::new();
    let mut packager: Option<Packager> = None;
    let mut buffer = vec![0u8; READ_CHUNK];
    let prefix = format!("assets/{}/media", args.asset);
    let config = rung_packaging(&args.asset, &args.spec);
    loop {
        let n = stdout
            .read(&mut buffer)
            .await
            .map_err(|e| format!("reading ffmpeg's output: {e}"))?;
        if n == 0 {
            break;
        }
        reader.feed(&buffer[..n]);
        while let Some(event) = reader.poll().map_err(|e| format!("ffmpeg's output: {e}"))? {
            match event {
                ReaderEvent::Tracks(tracks) => {
                    packager = Some(
                        Packager::new(config.clone(), &tracks)
                            .map_err(|e| format!("packaging: {e}"))?,
                    );
                }
                ReaderEvent::Sample(sample) => {
                    let packager = packager
                        .as_mut()
                        .ok_or_else(|| "ffmpeg sent samples before its tracks".to_owned())?;
                    packager
                        .push(sample)
                        .map_err(|e| format!("packaging: {e}"))?;
                }
            }
        }
        if let Some(packager) = packager.as_mut() {
            store_outputs(&args.storage, &prefix, packager).await?;
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| format!("waiting for ffmpeg: {e}"))?;
    let stderr = tail.await.unwrap_or_default().join(" | ");
    if !status.success() {
        return Err(format!("ffmpeg failed ({status}): {stderr}"));
    }
    let mut packager = packager.ok_or_else(|| format!("ffmpeg produced no media: {stderr}"))?;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    packager
        .finish(UnixMillis(now))
        .map_err(|e| format!("packaging: {e}"))?;
    store_outputs(&args.storage, &prefix, &mut packager).await?;
    Ok(packager.into_renditions())
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

/// Stores what the packager has ready, except its own multivariant playlist
/// and MPD: the job writes those over every rung.
async fn store_outputs(
    storage: &Storage,
    prefix: &str,
    packager: &mut Packager,
) -> Result<(), String> {
    while let Some(output) = packager.poll_output() {
        if output.path == MULTIVARIANT || output.path == MPD {
            continue;
        }
        let key = ObjectKey::new(format!("{prefix}/{}", output.path))
            .map_err(|e| format!("packager output name: {e}"))?;
        let bytes: Bytes = output.bytes;
        storage
            .put(&key, bytes)
            .await
            .map_err(|e| format!("storing {key}: {e}"))?;
    }
    Ok(())
}
