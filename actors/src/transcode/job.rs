//! `Job`: processing of one asset — probe the original, then make its
//! rendition with a [`Rung`](super::rung::Rung).
//!
//! Policy: a rung that fails (ffmpeg crashed, was killed, wrote garbage) is
//! restarted after 1 s, 2 s, 4 s; a fourth failure fails the asset with the
//! rung's reason. A rung that stops normally makes the asset ready. A source
//! ffprobe cannot read fails the asset at once with ffprobe's reason. The
//! job stops when the asset is ready or failed.

use std::path::PathBuf;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde_json::{Value, json};

use super::Transcoder;
use super::rung::{Rung, RungArgs, RungSpec};
use crate::process::piped;
use crate::storage::ObjectKey;

pub const MAX_RUNG_RESTARTS: u32 = 3;
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Job;

pub struct JobArgs {
    pub asset: String,
    pub transcoder: Transcoder,
}

pub struct JobState {
    asset: String,
    transcoder: Transcoder,
    rung: Option<RungArgsTemplate>,
    restarts: u32,
}

/// Everything needed to start (or restart) the rung.
#[derive(Clone)]
struct RungArgsTemplate {
    spec: RungSpec,
    source: PathBuf,
    has_video: bool,
    has_audio: bool,
}

pub enum JobMsg {
    Run,
    StartRung,
}

impl JobState {
    async fn fail(&self, myself: &ActorRef<JobMsg>, reason: &str) {
        tracing::warn!(asset = %self.asset, reason, "processing failed");
        if let Err(err) = self
            .transcoder
            .db
            .set_asset_status(&self.asset, "failed", Some(reason))
            .await
        {
            tracing::error!(asset = %self.asset, %err, "cannot record the failure");
        }
        myself.stop(Some("failed".into()));
    }
}

/// The original as a path ffmpeg can open.
fn source_path(transcoder: &Transcoder, asset: &str) -> Result<PathBuf, String> {
    let key = ObjectKey::new(format!("assets/{asset}/original")).map_err(|e| e.to_string())?;
    transcoder.storage.local_path(&key).ok_or_else(|| {
        "processing needs a local storage backend in this build (remote originals are not fetched yet)"
            .to_owned()
    })
}

/// ffprobe's view of `path`, reduced to what the asset shows.
async fn probe(transcoder: &Transcoder, path: &std::path::Path) -> Result<Value, String> {
    let mut command = piped("ffprobe");
    command
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path);
    let child = transcoder
        .processes
        .spawn("ffprobe", command)
        .map_err(|e| format!("cannot start ffprobe: {e}"))?;
    let output = tokio::time::timeout(PROBE_TIMEOUT, wait_output(child))
        .await
        .map_err(|_| format!("ffprobe gave no answer within {PROBE_TIMEOUT:?}"))??;
    if !output.0.success() {
        let reason = String::from_utf8_lossy(&output.2);
        return Err(format!(
            "not a media file ffmpeg can read: {}",
            reason.trim()
        ));
    }
    let raw: Value =
        serde_json::from_slice(&output.1).map_err(|e| format!("ffprobe printed no JSON: {e}"))?;
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
        return Err("the file has no audio or video stream".into());
    }
    let duration = raw["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse::<f64>().ok());
    Ok(json!({
        "format": raw["format"]["format_name"],
        "duration": duration,
        "bit_rate": raw["format"]["bit_rate"],
        "streams": streams,
    }))
}

async fn wait_output(
    mut child: crate::process::ChildProcess,
) -> Result<(std::process::ExitStatus, Vec<u8>, Vec<u8>), String> {
    use tokio::io::AsyncReadExt;
    let mut stdout = child.take_stdout().ok_or("ffprobe has no stdout")?;
    let mut stderr = child.take_stderr().ok_or("ffprobe has no stderr")?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (a, b) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
    a.and(b).map_err(|e| format!("reading ffprobe: {e}"))?;
    let status = child
        .wait()
        .await
        .map_err(|e| format!("waiting for ffprobe: {e}"))?;
    Ok((status, out, err))
}

/// The rung made from a probed source: 360p or the source's own height if
/// smaller (never upscaled), 800 kb/s video and 96 kb/s audio.
fn preview_rung(probe: &Value, source: PathBuf) -> RungArgsTemplate {
    let streams = probe["streams"].as_array().cloned().unwrap_or_default();
    let video = streams.iter().find(|s| s["type"] == "video");
    let has_audio = streams.iter().any(|s| s["type"] == "audio");
    let (width, height) = video.map_or((0, 0), |v| {
        (
            v["width"].as_u64().unwrap_or(0),
            v["height"].as_u64().unwrap_or(0),
        )
    });
    // A rotated source's displayed height is its stored width.
    let rotated = video
        .and_then(|v| v["rotation"].as_i64())
        .is_some_and(|r| r.rem_euclid(180) == 90);
    let shown = if rotated { width } else { height };
    let height = u32::try_from(shown.min(360)).unwrap_or(360).max(2) & !1;
    RungArgsTemplate {
        spec: RungSpec {
            name: format!("{height}p"),
            height,
            video_kbps: 800,
            audio_kbps: 96,
        },
        source,
        has_video: video.is_some(),
        has_audio,
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
            asset: args.asset,
            transcoder: args.transcoder,
            rung: None,
            restarts: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<JobMsg>,
        message: JobMsg,
        state: &mut JobState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            JobMsg::Run => {
                let db = &state.transcoder.db;
                db.set_asset_status(&state.asset, "processing", None)
                    .await?;
                let source = match source_path(&state.transcoder, &state.asset) {
                    Ok(source) => source,
                    Err(reason) => {
                        state.fail(&myself, &reason).await;
                        return Ok(());
                    }
                };
                let probed = match probe(&state.transcoder, &source).await {
                    Ok(probed) => probed,
                    Err(reason) => {
                        state.fail(&myself, &reason).await;
                        return Ok(());
                    }
                };
                db.set_asset_probe(&state.asset, &probed).await?;
                state.rung = Some(preview_rung(&probed, source));
                myself.cast(JobMsg::StartRung)?;
            }
            JobMsg::StartRung => {
                let Some(template) = state.rung.clone() else {
                    return Ok(());
                };
                Actor::spawn_linked(
                    None,
                    Rung,
                    RungArgs {
                        asset: state.asset.clone(),
                        spec: template.spec,
                        source: template.source,
                        has_video: template.has_video,
                        has_audio: template.has_audio,
                        storage: state.transcoder.storage.clone(),
                        processes: state.transcoder.processes.clone(),
                    },
                    myself.get_cell(),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<JobMsg>,
        event: SupervisionEvent,
        state: &mut JobState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(_, _, reason)
                if reason.as_deref() == Some("done") =>
            {
                state
                    .transcoder
                    .db
                    .set_asset_status(&state.asset, "ready", None)
                    .await?;
                tracing::info!(asset = %state.asset, "asset ready");
                myself.stop(Some("ready".into()));
            }
            SupervisionEvent::ActorFailed(_, err) => {
                if state.restarts >= MAX_RUNG_RESTARTS {
                    let reason = format!("gave up after {} restarts: {err}", state.restarts);
                    state.fail(&myself, &reason).await;
                } else {
                    let backoff = Duration::from_secs(1 << state.restarts);
                    state.restarts += 1;
                    tracing::warn!(asset = %state.asset, %err, ?backoff, "rung failed; restarting");
                    myself.send_after(backoff, || JobMsg::StartRung);
                }
            }
            _ => {}
        }
        Ok(())
    }
}
