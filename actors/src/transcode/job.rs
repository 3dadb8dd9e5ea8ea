//! `Job`: processing of one asset — probe the original, then make its
//! ladder with one [`Rung`](super::rung::Rung) per rendition, and write the
//! multivariant playlist and MPD over all of them.
//!
//! The ladder (by default 360p 800 kb/s, 720p 2.5 Mb/s, 1080p 5 Mb/s, 1440p
//! 8 Mb/s, 2160p 14 Mb/s; configurable) is cut to the source and never
//! upscaled: a rung is made only if the source is at least that tall (a
//! smaller source gets one rung at its own height, at the lowest rung's
//! rates); one audio rung (AAC-LC, at the audio rate of the top rung made)
//! is shared by every video rung.
//!
//! Policy: a rung that fails (ffmpeg crashed, was killed, wrote garbage) is
//! restarted after 1 s, 2 s, 4 s; its fourth failure fails the asset with
//! the rung's reason and stops the other rungs. When every rung has
//! reported its renditions the manifests are written and the asset is
//! ready. A source ffprobe cannot read fails the asset at once with
//! ffprobe's reason. The job stops when the asset is ready or failed.

use std::collections::HashMap;
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde_json::{Value, json};
use streamforge_protocols::hls::UnixMillis;
use streamforge_protocols::package::{
    FinishedRendition, MULTIVARIANT, PackageError, PackagerConfig, combined_manifests,
};

use super::rung::{Rung, RungArgs, RungErrorKind, RungSpec, store_media};
use super::{LadderRung, Transcoder};
use crate::assets::{AssetStatus, RungState, Stage, keys};
use crate::events::Event;
use crate::process::piped;
use crate::supervision::Backoff;

/// A rung's ffmpeg is restarted at most this many times (after 1, 2 and
/// 4 s); its next failure fails the asset with the reason.
pub const MAX_RUNG_RESTARTS: usize = 3;
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// ffprobe on an upload still arriving waits for the bytes it needs (the
/// header, or the index at the end of a non-faststart MP4).
const GROWING_PROBE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Why processing an asset failed (recorded on the asset, without the
/// internal URLs and paths ffmpeg quotes).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Rung(#[from] RungErrorKind),
    #[error("writing {what}: {source}")]
    Manifests {
        what: &'static str,
        #[source]
        source: PackageError,
    },
    #[error("reading the upload: {0}")]
    Upload(#[from] crate::db::DbError),
    #[error(
        "the upload is not complete, and no source of its bytes is up (this server has no growing source, or the node holding the upload is down)"
    )]
    NoGrowingSource,
    #[error("the original is in remote storage and no source server runs to read it from")]
    RemoteOriginal,
    #[error("cannot start ffprobe: {0}")]
    ProbeStart(#[source] std::io::Error),
    #[error("ffprobe gave no answer within {0:?}")]
    ProbeTimeout(Duration),
    #[error("running ffprobe: {0}")]
    ProbeRun(#[source] std::io::Error),
    #[error("not a media file ffmpeg can read: {0}")]
    NotMedia(String),
    #[error("ffprobe printed no JSON: {0}")]
    ProbeJson(#[source] serde_json::Error),
    #[error("the file has no audio or video stream")]
    NoStreams,
}

pub struct Job;

pub struct JobArgs {
    pub asset: String,
    pub transcoder: Transcoder,
}

struct RungPlan {
    spec: RungSpec,
    restarts: Backoff,
    actor: Option<ActorId>,
    done: Option<Vec<FinishedRendition>>,
}

pub struct JobState {
    asset: String,
    /// The upload the asset came from, so that its watchers see the stages too.
    upload: Option<String>,
    transcoder: Transcoder,
    source: Option<String>,
    growing: bool,
    rungs: HashMap<String, RungPlan>,
    /// Renditions of rungs still working that have a first segment: the
    /// interim multivariant playlist (the preview) lists them.
    progress: HashMap<String, Vec<FinishedRendition>>,
    previewing: bool,
    finished: bool,
    /// The source's duration, from the probe.
    duration_ms: Option<u64>,
    /// The one ffmpeg that decodes the source for every rung starting from
    /// zero, and the outputs of it that no rung has taken yet.
    shared: Option<super::shared::SharedLadder>,
    shared_streams: HashMap<String, super::shared::SharedStream>,
    /// How a long, complete source's rungs are cut into chunks for the
    /// workers up: the cut an earlier run of the job queued, if its chunks
    /// are still there, else one for the workers up now. `None` alone: one
    /// decode for the whole ladder costs less.
    cut: Option<Vec<super::chunks::Cut>>,
    /// Whether the audio rung is a task in the queue: in a cut ladder, or
    /// left queued, running or done by an earlier run of the job (it goes
    /// on there rather than being made twice).
    queued_audio: bool,
}

pub enum JobMsg {
    Run,
    StartRung(String),
    /// The thumbnails rung stored the poster.
    PosterReady,
    /// A rung has a first segment in every rendition: playable so far.
    RungProgress {
        rung: String,
        renditions: Vec<FinishedRendition>,
    },
    /// A rung finished; its renditions' metadata, for the manifests.
    RungDone {
        rung: String,
        renditions: Vec<FinishedRendition>,
    },
}

impl JobState {
    async fn stage(&self, stage: Stage, error: Option<&str>) {
        if let Err(err) = self.transcoder.db.set_asset_stage(&self.asset, stage).await {
            tracing::warn!(asset = %self.asset, %err, "cannot record the stage");
        }
        self.transcoder.events.publish(Event::Stage {
            asset_id: self.asset.clone(),
            upload_id: self.upload.clone(),
            stage,
            error: error.map(str::to_owned),
        });
    }

    async fn rung(&self, rung: &str, state: RungState) {
        if let Err(err) = self
            .transcoder
            .db
            .set_asset_rung(&self.asset, rung, state)
            .await
        {
            tracing::warn!(asset = %self.asset, %err, "cannot record a rung's state");
        }
    }

    async fn fail(&mut self, myself: &ActorRef<JobMsg>, reason: &str) {
        self.finished = true;
        // The log keeps ffmpeg's words whole; the asset (and so the API and
        // its events) gets them without the internal URLs and paths ffmpeg
        // quotes (the growing source's URL carries its secret).
        tracing::warn!(asset = %self.asset, reason, "processing failed");
        let public = public_reason(reason);
        let reason = public.as_str();
        // The status first: a client told of the failed stage finds the
        // asset failed when it asks.
        if let Err(err) = self
            .transcoder
            .db
            .set_asset_status(&self.asset, AssetStatus::Failed, Some(reason))
            .await
        {
            tracing::error!(asset = %self.asset, %err, "cannot record the failure");
        }
        self.stage(Stage::Failed, Some(reason)).await;
        myself.stop(Some("failed".into()));
    }

    /// While rungs still work: a multivariant playlist over the renditions
    /// that have segments (their media playlists are `EVENT` playlists that
    /// grow). Written once video is there; false until then.
    async fn publish_preview(&self) -> Result<bool, JobError> {
        let mut names: Vec<&String> = self.progress.keys().collect();
        names.sort_by_key(|name| {
            self.rungs
                .get(*name)
                .map_or((3, 0), |plan| match plan.spec {
                    RungSpec::Video { height, .. } => (0, height),
                    RungSpec::Audio { .. } => (1, 0),
                    RungSpec::Thumbnails { .. } => (2, 0),
                })
        });
        let renditions: Vec<&FinishedRendition> = names
            .iter()
            .flat_map(|name| self.progress.get(*name).into_iter().flatten())
            .collect();
        let has_video = self
            .rungs
            .values()
            .any(|plan| matches!(plan.spec, RungSpec::Video { .. }));
        let video_ready = renditions
            .iter()
            .any(|r| r.kind() == streamforge_protocols::media::MediaKind::Video);
        if renditions.is_empty() || (has_video && !video_ready) {
            return Ok(false);
        }
        self.write_manifests(renditions, "the preview manifests", true)
            .await?;
        Ok(true)
    }

    /// Writes the multivariant playlist and the MPD over every rung.
    async fn publish(&self) -> Result<(), JobError> {
        // Video rungs from the smallest up, then audio: the playlist order.
        let mut rungs: Vec<&RungPlan> = self.rungs.values().collect();
        rungs.sort_by_key(|plan| match plan.spec {
            RungSpec::Video { height, .. } => (0, height),
            RungSpec::Audio { .. } => (1, 0),
            RungSpec::Thumbnails { .. } => (2, 0),
        });
        let renditions = rungs
            .into_iter()
            .flat_map(|plan| plan.done.iter().flatten());
        self.write_manifests(renditions, "the manifests", false)
            .await
    }

    /// Writes the multivariant playlist (and, unless `preview_only`, the
    /// MPD) over `renditions`.
    async fn write_manifests<'a>(
        &self,
        renditions: impl IntoIterator<Item = &'a FinishedRendition>,
        what: &'static str,
        preview_only: bool,
    ) -> Result<(), JobError> {
        let config = PackagerConfig {
            presentation_id: self.asset.clone(),
            ..PackagerConfig::default()
        };
        let outputs = combined_manifests(&config, renditions, UnixMillis(crate::clock::now_ms()))
            .map_err(|source| JobError::Manifests { what, source })?;
        for output in outputs {
            if preview_only && output.path != MULTIVARIANT {
                continue;
            }
            let storage = &self.transcoder.storage;
            store_media(storage, &self.asset, &output.path, output.data).await?;
        }
        Ok(())
    }
}

/// The original as something ffmpeg can open: the growing source of the
/// upload while it is still arriving, else the stored file.
async fn source_input(
    transcoder: &Transcoder,
    asset: &str,
    upload: Option<&str>,
) -> Result<(String, bool), JobError> {
    if let Some(upload) = upload {
        let record = transcoder.db.upload(upload).await?;
        if let Some(record) = record
            && record.completed_at_ms.is_none()
        {
            // Read where the bytes arrive: this node's source server (which
            // reads the pieces of an upload arriving into the store, or this
            // node's own append file), or the holder's over the network.
            let holder = record
                .node
                .as_deref()
                .filter(|n| *n != transcoder.node() && record.pieces.is_none());
            let url = match holder {
                None => transcoder.growing_url(upload),
                Some(node) => transcoder.remote_growing_url(node, upload).await?,
            };
            return Ok((url.ok_or(JobError::NoGrowingSource)?, true));
        }
    }
    let key = keys::original(asset).map_err(RungErrorKind::Key)?;
    match transcoder.storage.local_path(&key) {
        Some(path) => Ok((path.display().to_string(), false)),
        // A remote store: ffmpeg reads the original through the source
        // server, by range.
        None => transcoder
            .original_url(asset)
            .map(|url| (url, false))
            .ok_or(JobError::RemoteOriginal),
    }
}

/// ffprobe's view of `input`, reduced to what the asset shows.
async fn probe(
    transcoder: &Transcoder,
    input: &str,
    growing: bool,
    timeout: Duration,
) -> Result<Value, JobError> {
    let mut command = piped("ffprobe");
    if growing {
        command.args(super::rung::GROWING_INPUT);
    }
    command
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(input);
    let child = transcoder
        .processes
        .spawn("ffprobe", command)
        .map_err(JobError::ProbeStart)?;
    let output = tokio::time::timeout(timeout, child.output())
        .await
        .map_err(|_| JobError::ProbeTimeout(timeout))?
        .map_err(JobError::ProbeRun)?;
    if !output.status.success() {
        let reason = String::from_utf8_lossy(&output.stderr);
        return Err(JobError::NotMedia(reason.trim().to_owned()));
    }
    let raw: Value = serde_json::from_slice(&output.stdout).map_err(JobError::ProbeJson)?;
    let streams: Vec<Value> = raw["streams"]
        .as_array()
        .map(|streams| {
            streams
                .iter()
                .filter(|s| matches!(s["codec_type"].as_str(), Some("video" | "audio")))
                .map(|s| {
                    let rotation = s["side_data_list"]
                        .as_array()
                        .and_then(|list| list.iter().find_map(|d| d["rotation"].as_i64()))
                        .or_else(|| s["tags"]["rotate"].as_str().and_then(|r| r.parse().ok()));
                    json!({
                        "type": s["codec_type"],
                        "codec": s["codec_name"],
                        "width": s["width"],
                        "height": s["height"],
                        "frame_rate": s["avg_frame_rate"],
                        "rotation": rotation,
                        "channels": s["channels"],
                        "channel_layout": s["channel_layout"],
                        "sample_rate": s["sample_rate"],
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    if streams.is_empty() {
        return Err(JobError::NoStreams);
    }
    let duration = raw["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse::<f64>().ok());
    let kind = if super::image::is_still_image(&raw) {
        "image"
    } else if streams.iter().any(|s| s["type"] == "video") {
        "video"
    } else {
        "audio"
    };
    Ok(json!({
        "kind": kind,
        "format": raw["format"]["format_name"],
        "duration": duration,
        "bit_rate": raw["format"]["bit_rate"],
        "streams": streams,
    }))
}

/// The rungs for a probed source; see the module docs. `ladder` is sorted
/// by height and not empty (the configuration guarantees both).
fn rungs_for(probe: &Value, ladder: &[LadderRung]) -> Vec<RungSpec> {
    let Some(lowest) = ladder.first() else {
        return Vec::new();
    };
    let streams = probe["streams"].as_array().cloned().unwrap_or_default();
    let video = streams.iter().find(|s| s["type"] == "video");
    let has_audio = streams.iter().any(|s| s["type"] == "audio");
    let mut rungs = Vec::new();
    let mut audio_kbps = lowest.audio_kbps;
    if let Some(video) = video {
        let (width, height) = (
            video["width"].as_u64().unwrap_or(0),
            video["height"].as_u64().unwrap_or(0),
        );
        // A rung's height is the short side of the picture, as other
        // platforms name them: a 720p portrait rung is 720x1280. Rotation
        // only swaps the sides, so the short side is the same either way.
        let shown = u32::try_from(width.min(height)).unwrap_or(u32::MAX);
        for rung in ladder {
            if rung.height <= shown {
                rungs.push(RungSpec::Video {
                    height: rung.height,
                    kbps: rung.video_kbps,
                });
                audio_kbps = rung.audio_kbps;
            }
        }
        if rungs.is_empty() {
            rungs.push(RungSpec::Video {
                height: shown.max(2) & !1,
                kbps: lowest.video_kbps,
            });
        }
    }
    if has_audio {
        rungs.push(RungSpec::Audio { kbps: audio_kbps });
    }
    if let Some(thumbnails) = thumbnails_for(probe, video) {
        rungs.push(thumbnails);
    }
    rungs
}

/// Storyboard tiles 160 pixels wide at the displayed aspect ratio, one
/// every 2 s for up to 100 tiles (then spaced out to cover the duration).
fn thumbnails_for(probe: &Value, video: Option<&Value>) -> Option<RungSpec> {
    let video = video?;
    let duration_ms = (probe["duration"].as_f64()? * 1000.0) as u64;
    let (mut width, mut height) = (video["width"].as_u64()?, video["height"].as_u64()?);
    if video["rotation"]
        .as_i64()
        .is_some_and(|r| r.rem_euclid(180) == 90)
    {
        std::mem::swap(&mut width, &mut height);
    }
    if duration_ms == 0 || width == 0 || height == 0 {
        return None;
    }
    let tile_width = 160u32;
    let tile_height = u32::try_from((u64::from(tile_width) * height / width).max(2) & !1).ok()?;
    let interval_ms = duration_ms.div_ceil(100).max(2000);
    Some(RungSpec::Thumbnails {
        tile_width,
        tile_height,
        interval_ms,
        duration_ms,
    })
}

impl JobState {
    /// Probes the source, then makes an image's renditions or starts one
    /// rung per ladder step.
    async fn run(&mut self, myself: &ActorRef<JobMsg>) -> Result<(), ActorProcessingErr> {
        let db = self.transcoder.db.clone();
        db.set_asset_status(&self.asset, AssetStatus::Processing, None)
            .await?;
        self.upload = db.asset(&self.asset).await?.and_then(|a| a.upload_id);
        self.stage(Stage::Probing, None).await;
        let source = source_input(&self.transcoder, &self.asset, self.upload.as_deref()).await;
        let (source, growing) = match source {
            Ok(source) => source,
            Err(err) => {
                self.fail(myself, &err.to_string()).await;
                return Ok(());
            }
        };
        let timeout = if growing {
            GROWING_PROBE_TIMEOUT
        } else {
            PROBE_TIMEOUT
        };
        let probed = match probe(&self.transcoder, &source, growing, timeout).await {
            Ok(probed) => probed,
            Err(err) => {
                self.fail(myself, &err.to_string()).await;
                return Ok(());
            }
        };
        db.set_asset_probe(&self.asset, &probed).await?;
        // An upload that completed while it was probed is read from where
        // it is stored, not through the source server.
        let (source, growing) = match growing {
            true => source_input(&self.transcoder, &self.asset, self.upload.as_deref())
                .await
                .unwrap_or((source, growing)),
            false => (source, growing),
        };
        self.stage(Stage::Transcoding, None).await;
        if probed["kind"] == "image" {
            return self.image(myself, &source, &probed).await;
        }
        self.source = Some(source);
        self.growing = growing;
        self.duration_ms = probed["duration"]
            .as_f64()
            .filter(|d| d.is_finite() && *d > 0.0)
            .map(|d| (d * 1000.0) as u64);
        let specs = rungs_for(&probed, &self.transcoder.ladder);
        self.cut = self.cut().await;
        self.queued_audio = self.cut.is_some() || self.audio_left_queued(&specs).await;
        self.plan_rungs(&specs).await;
        for spec in specs {
            let name = spec.name();
            self.rungs.insert(
                name.clone(),
                RungPlan {
                    spec,
                    restarts: Backoff::new(Duration::from_secs(1), Duration::MAX)
                        .with_limit(MAX_RUNG_RESTARTS, Duration::MAX),
                    actor: None,
                    done: None,
                },
            );
            myself.cast(JobMsg::StartRung(name))?;
        }
        Ok(())
    }

    /// A still image: its WebP and AVIF renditions, and it is ready.
    async fn image(
        &mut self,
        myself: &ActorRef<JobMsg>,
        source: &str,
        probed: &Value,
    ) -> Result<(), ActorProcessingErr> {
        let width = probed["streams"][0]["width"].as_u64().unwrap_or(0);
        let width = u32::try_from(width).unwrap_or(u32::MAX);
        match super::image::process(&self.transcoder, &self.asset, source, width).await {
            Ok(_) => {
                self.finished = true;
                let db = &self.transcoder.db;
                db.set_asset_poster(&self.asset).await?;
                db.set_asset_status(&self.asset, AssetStatus::Ready, None)
                    .await?;
                tracing::info!(asset = %self.asset, "image ready");
                self.stage(Stage::Ready, None).await;
                myself.stop(Some("ready".into()));
            }
            Err(err) => self.fail(myself, &err.to_string()).await,
        }
        Ok(())
    }

    /// Queues the chunks of the rungs cut into chunks, and starts one
    /// ffmpeg that decodes the source once for every other rung that starts
    /// from zero (nothing stored yet), when there are two or more; the
    /// others, and any rung restarted later, run their own.
    async fn plan_rungs(&mut self, specs: &[RungSpec]) {
        let Some(source) = &self.source else { return };
        let mut fresh = Vec::new();
        let mut queued = false;
        for spec in specs {
            if let Some((_, cuts)) = self.chunked(spec) {
                // Chunks left queued by an earlier run are announced too.
                queued = true;
                // Every rung's chunks queued before any is claimed, so that
                // a worker takes a span's chunks of every rung at once.
                let added = self.transcoder.db.add_chunk_tasks(&self.asset, spec, &cuts);
                if let Err(err) = added.await {
                    tracing::warn!(asset = %self.asset, %err, "cannot queue chunks yet");
                }
            } else if !super::rung::has_checkpoint(&self.transcoder.storage, &self.asset, spec)
                .await
            {
                fresh.push(spec.clone());
            }
        }
        if queued {
            // The other workers take their spans now.
            self.transcoder.db.wake_workers().await;
        }
        if fresh.len() < 2 {
            return;
        }
        let started = super::shared::start(
            &self.transcoder.processes,
            &format!("ffmpeg {} ladder", self.asset),
            source,
            self.growing,
            super::shared::Window::default(),
            &fresh,
        );
        match started {
            Ok((ladder, streams)) => {
                tracing::debug!(asset = %self.asset, rungs = fresh.len(), "one decode for the ladder");
                self.shared = Some(ladder);
                self.shared_streams = streams;
            }
            Err(err) => {
                tracing::warn!(asset = %self.asset, %err, "cannot start the shared ffmpeg; each rung decodes on its own");
            }
        }
    }

    /// How many workers up (this node among them) share a cut ladder: 0
    /// when no worker but this node is up.
    async fn workers_to_share(&self) -> usize {
        use crate::cluster::{NodeState, Role};
        match self.transcoder.db.nodes().await {
            Ok(nodes) => {
                let workers = |node: &&crate::cluster::NodeRecord| {
                    node.state == NodeState::Up && node.roles.contains(&Role::Worker)
                };
                let others = nodes
                    .iter()
                    .filter(workers)
                    .filter(|node| node.id != self.transcoder.node())
                    .count();
                match others {
                    0 => 0,
                    n => n + usize::from(self.transcoder.worker),
                }
            }
            Err(err) => {
                tracing::warn!(asset = %self.asset, %err, "cannot list the nodes; not cutting the ladder");
                0
            }
        }
    }

    /// How rung `spec` is cut into chunks for any worker: the video rungs
    /// and the thumbnails of a long, complete source while other workers
    /// are up (each span's chunks of every rung come from one decode). The
    /// audio rung of such a ladder is one task of the whole source, the
    /// last one claimed: the worker that is free first takes it.
    fn chunked(&self, spec: &RungSpec) -> Option<(Transcoder, Vec<super::chunks::Cut>)> {
        match (spec, &self.cut) {
            (RungSpec::Audio { .. }, _) => self
                .queued_audio
                .then(|| (self.transcoder.clone(), vec![(0, None)])),
            (_, None) => None,
            (_, Some(cut)) => Some((self.transcoder.clone(), cut.clone())),
        }
    }

    /// Whether an earlier run of the job left the audio rung's task in
    /// the queue (queued, running, or done and not yet joined): it was cut
    /// then, so its task goes on even if this run does not cut the ladder.
    async fn audio_left_queued(&self, specs: &[RungSpec]) -> bool {
        let Some(audio) = specs.iter().find(|s| matches!(s, RungSpec::Audio { .. })) else {
            return false;
        };
        match self
            .transcoder
            .db
            .chunk_tasks_of(&self.asset, &audio.name())
            .await
        {
            Ok(tasks) => tasks
                .iter()
                .any(|t| matches!(t.state.as_str(), "queued" | "running" | "done")),
            Err(err) => {
                tracing::warn!(asset = %self.asset, %err, "cannot read the chunks queued before");
                false
            }
        }
    }

    /// The cut of this job's source (see [`JobState::cut`]): kept from an
    /// earlier run so that chunks already made or being made by other
    /// workers (and their storyboard tiles, stored by chunk number) stay
    /// valid whatever the workers up now.
    async fn cut(&self) -> Option<Vec<super::chunks::Cut>> {
        let (false, Some(duration_ms)) = (self.growing, self.duration_ms) else {
            return None;
        };
        match self.transcoder.db.chunk_cut(&self.asset).await {
            Ok(Some(cut)) => return Some(cut),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(asset = %self.asset, %err, "cannot read the chunks queued before; not cutting the ladder");
                return None;
            }
        }
        match self.workers_to_share().await {
            0 => None,
            workers => self.transcoder.chunk_plan(duration_ms, workers),
        }
    }

    /// Starts (or restarts) rung `name` as a child of the job.
    async fn start_rung(
        &mut self,
        myself: &ActorRef<JobMsg>,
        name: String,
    ) -> Result<(), ActorProcessingErr> {
        let chunked = match self.rungs.get(&name) {
            Some(plan) => self.chunked(&plan.spec),
            None => return Ok(()),
        };
        // Its share of the job's ffmpeg, on the first start only (the
        // thumbnails rung's with the poster's).
        let shared = self.shared_streams.remove(&name);
        let shared_poster = match self.rungs.get(&name).map(|plan| &plan.spec) {
            Some(RungSpec::Thumbnails { .. }) => self.shared_streams.remove(super::shared::POSTER),
            _ => None,
        };
        let (Some(plan), Some(source)) = (self.rungs.get_mut(&name), &self.source) else {
            return Ok(());
        };
        if self.finished || plan.done.is_some() {
            return Ok(());
        }
        let (rung, _) = Actor::spawn_linked(
            None,
            Rung,
            RungArgs {
                asset: self.asset.clone(),
                spec: plan.spec.clone(),
                source: source.clone(),
                growing: self.growing,
                storage: self.transcoder.storage.clone(),
                processes: self.transcoder.processes.clone(),
                job: myself.clone(),
                chunked,
                shared,
                shared_poster,
            },
            myself.get_cell(),
        )
        .await?;
        plan.actor = Some(rung.get_id());
        self.rung(&name, RungState::Encoding).await;
        Ok(())
    }

    /// A rung's first segments are packaged: the preview may list it.
    async fn rung_progress(
        &mut self,
        rung: String,
        renditions: Vec<FinishedRendition>,
    ) -> Result<(), ActorProcessingErr> {
        if self.finished {
            return Ok(());
        }
        self.rung(&rung, RungState::Previewable).await;
        self.progress.insert(rung, renditions);
        match self.publish_preview().await {
            Ok(true) if !self.previewing => {
                self.previewing = true;
                self.transcoder.db.set_asset_preview(&self.asset).await?;
                tracing::info!(asset = %self.asset, "preview playable");
                self.stage(Stage::Previewing, None).await;
            }
            Ok(_) => {}
            Err(reason) => {
                tracing::warn!(asset = %self.asset, %reason, "cannot write the preview playlist");
            }
        }
        Ok(())
    }

    /// A rung is done; with the last one, the manifests are written and
    /// the asset is ready.
    async fn rung_done(
        &mut self,
        myself: &ActorRef<JobMsg>,
        rung: String,
        renditions: Vec<FinishedRendition>,
    ) -> Result<(), ActorProcessingErr> {
        self.rung(&rung, RungState::Done).await;
        self.progress.remove(&rung);
        if let Some(plan) = self.rungs.get_mut(&rung) {
            plan.done = Some(renditions);
        }
        self.transcoder.events.publish(Event::RenditionReady {
            asset_id: self.asset.clone(),
            rung,
        });
        if self.finished || !self.rungs.values().all(|plan| plan.done.is_some()) {
            return Ok(());
        }
        self.finished = true;
        match self.publish().await {
            Ok(()) => {
                self.transcoder
                    .db
                    .set_asset_status(&self.asset, AssetStatus::Ready, None)
                    .await?;
                tracing::info!(asset = %self.asset, rungs = self.rungs.len(), "asset ready");
                // Nothing is left to resume.
                for plan in self.rungs.values() {
                    super::rung::forget_checkpoint(
                        &self.transcoder.storage,
                        &self.asset,
                        &plan.spec,
                    )
                    .await;
                }
                self.stage(Stage::Ready, None).await;
                myself.stop(Some("ready".into()));
            }
            Err(err) => self.fail(myself, &err.to_string()).await,
        }
        Ok(())
    }
}

impl Actor for Job {
    type Msg = JobMsg;
    type State = JobState;
    type Arguments = JobArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<JobMsg>,
        args: JobArgs,
    ) -> Result<JobState, ActorProcessingErr> {
        myself.cast(JobMsg::Run)?;
        Ok(JobState {
            upload: None,
            asset: args.asset,
            transcoder: args.transcoder,
            source: None,
            growing: false,
            rungs: HashMap::new(),
            progress: HashMap::new(),
            previewing: false,
            duration_ms: None,
            finished: false,
            shared: None,
            shared_streams: HashMap::new(),
            cut: None,
            queued_audio: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<JobMsg>,
        message: JobMsg,
        state: &mut JobState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            JobMsg::Run => state.run(&myself).await,
            JobMsg::StartRung(name) => state.start_rung(&myself, name).await,
            JobMsg::PosterReady => {
                state.transcoder.db.set_asset_poster(&state.asset).await?;
                state.transcoder.events.publish(Event::PosterReady {
                    asset_id: state.asset.clone(),
                    upload_id: state.upload.clone(),
                    poster_url: format!("/vod/{}/poster.webp", state.asset),
                });
                Ok(())
            }
            JobMsg::RungProgress { rung, renditions } => {
                state.rung_progress(rung, renditions).await
            }
            JobMsg::RungDone { rung, renditions } => {
                state.rung_done(&myself, rung, renditions).await
            }
        }
    }

    /// The job's claim ends with it: done once the asset is ready or
    /// failed, back in the queue when it stopped before (the node shuts
    /// down), for this node's next start or another worker.
    async fn post_stop(
        &self,
        _myself: ActorRef<JobMsg>,
        state: &mut JobState,
    ) -> Result<(), ActorProcessingErr> {
        state.transcoder.release(&state.asset, state.finished).await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<JobMsg>,
        event: SupervisionEvent,
        state: &mut JobState,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(cell, err) = event else {
            return Ok(());
        };
        if state.finished {
            return Ok(());
        }
        let Some((name, plan)) = state
            .rungs
            .iter_mut()
            .find(|(_, plan)| plan.actor == Some(cell.get_id()))
        else {
            return Ok(());
        };
        if let Some(backoff) = plan.restarts.next_delay() {
            tracing::warn!(asset = %state.asset, rung = %name, %err, ?backoff, "rung failed; restarting");
            let name = name.clone();
            state.rung(&name, RungState::Restarting).await;
            myself.send_after(backoff, move || JobMsg::StartRung(name));
        } else {
            let reason = format!(
                "rung {name} gave up after {} restarts: {err}",
                plan.restarts.restarts()
            );
            let name = name.clone();
            state.rung(&name, RungState::Failed).await;
            state.fail(&myself, &reason).await;
        }
        Ok(())
    }
}

/// `reason` with every URL and absolute path replaced by `<input>`: what
/// an API client may read of an ffmpeg or ffprobe message: ffmpeg quotes
/// its input URL, and the growing source's URL carries its secret.
pub(crate) fn public_reason(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut rest = reason;
    while let Some(at) = rest.find(|c: char| c == '/' || c.is_ascii_alphabetic()) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let word_start = out.chars().next_back().is_none_or(|c| {
            c.is_whitespace() || matches!(c, '\'' | '"' | '(' | '[' | '<' | '=' | ',')
        });
        let scheme = ["http://", "https://", "file://", "tcp://", "pipe:"]
            .iter()
            .any(|s| {
                from.get(..s.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(s))
            });
        let path = from.starts_with('/') && from[1..].contains('/');
        if word_start && (scheme || path) {
            // Up to the end of the word; a trailing ':' is ffmpeg's own.
            let end = from
                .find(|c: char| {
                    c.is_whitespace() || matches!(c, '\'' | '"' | ')' | ']' | '>' | ',')
                })
                .unwrap_or(from.len());
            let word = &from[..end];
            let kept = word.len() - word.trim_end_matches([':', '.', ';']).len();
            out.push_str("<input>");
            out.push_str(&word[word.len() - kept..]);
            rest = &from[end..];
        } else {
            let next = from.chars().next().map_or(1, char::len_utf8);
            out.push_str(&from[..next]);
            rest = &from[next..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder() -> Vec<LadderRung> {
        [(360, 800), (720, 2500), (1080, 5000), (1440, 9000)]
            .map(|(height, video_kbps)| LadderRung {
                height,
                video_kbps,
                audio_kbps: 128,
            })
            .to_vec()
    }

    fn heights(width: u64, height: u64, rotation: Option<i64>) -> Vec<u32> {
        let probe = json!({"duration": 0.0, "streams": [{
            "type": "video", "width": width, "height": height, "rotation": rotation,
        }]});
        rungs_for(&probe, &ladder())
            .into_iter()
            .filter_map(|r| match r {
                RungSpec::Video { height, .. } => Some(height),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_ladder_follows_the_short_side() {
        assert_eq!(heights(1920, 1080, None), [360, 720, 1080]);
        // A phone video, stored portrait or stored landscape and rotated.
        assert_eq!(heights(1080, 1920, None), [360, 720, 1080]);
        assert_eq!(heights(1920, 1080, Some(-90)), [360, 720, 1080]);
        assert_eq!(heights(720, 1280, Some(0)), [360, 720]);
        // Smaller than every rung: one rung at its own size.
        assert_eq!(heights(240, 426, None), [240]);
    }

    #[test]
    fn urls_secrets_and_paths_are_not_shown() {
        assert_eq!(
            public_reason(
                "not a media file ffmpeg can read: http://127.0.0.1:41234/uploads/abc?secret=9f8e: \
                 Invalid data found when processing input"
            ),
            "not a media file ffmpeg can read: <input>: Invalid data found when processing input"
        );
        assert_eq!(
            public_reason(
                "/var/lib/streamforge/media/assets/x/original: No such file or directory"
            ),
            "<input>: No such file or directory"
        );
        assert_eq!(
            public_reason("Error opening 'https://cdn.example/a.mp4?token=s' (404)"),
            "Error opening '<input>' (404)"
        );
        // Ratios, sizes and plain words stay.
        let plain = "rung 720p: ffmpeg exited with 1 | frame=10 fps=0.0 q=-1.0 size=N/A 16/9";
        assert_eq!(public_reason(plain), plain);
    }
}
