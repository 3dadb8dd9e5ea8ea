//! RTSP pull: cameras (or any RTSP server) from the configuration, pulled
//! with the `retina` client and published as live streams.
//!
//! One `RtspPull` actor per source, under the live branch. Its task
//! connects (DESCRIBE, SETUP of the first H.264/H.265 video and the first
//! AAC audio stream, PLAY), turns retina's frames into samples for the
//! stream's [`Publisher`], and when the source fails or ends (a camera
//! reboots, the network drops, no media for `live.idle_timeout`) it
//! reconnects after 1, 2, 4 … up to 30 s. Stopping the actor aborts the
//! task: the RTSP session is dropped (retina sends TEARDOWN) and the
//! stream ends.
//!
//! Timestamps are RTP presentation times made relative to the session
//! start (retina aligns streams on RTP-Info). Decode times come from
//! [`DecodeTimes`], as for RTSP push: without B-frames (most cameras) they
//! equal the presentation times and nothing waits; with B-frames each frame
//! waits for as many followers as the SPS's reorder depth.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use futures::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use retina::client::{Credentials, PlayOptions, SessionOptions, SetupOptions, Transport};
use retina::codec::{CodecItem, FrameFormat, ParametersRef};
use streamforge_protocols::codec::{
    AudioSpecificConfig, AvcConfig, CodecConfig, CodecError, HevcConfig,
};
use streamforge_protocols::media::{Sample, Track};
use streamforge_protocols::rtp::reorder::DecodeTimes;

use super::{IngestProtocol, Live, PublishError, Publisher};
use crate::supervision::Backoff;
use crate::supervision::BranchKind;

/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// An RTSP source to pull, from the configuration (`[[live.pull]]`).
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct PullSource {
    /// The live stream it appears as: `/live/{name}/…`.
    pub name: String,
    /// `rtsp://host[:port]/path`.
    pub url: String,
    /// User name for the camera's RTSP authentication, if it asks.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for the camera's RTSP authentication.
    #[serde(default)]
    pub password: Option<String>,
    /// `tcp` (interleaved, the default) or `udp`.
    #[serde(default)]
    pub transport: PullTransport,
}

/// How a pulled source's RTP travels.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PullTransport {
    /// Interleaved in the RTSP connection.
    #[default]
    Tcp,
    Udp,
}

/// Why a pull of a camera ended (it is tried again after a backoff).
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("the source URL: {0}")]
    Url(#[from] url::ParseError),
    #[error("DESCRIBE got no answer within {0:?}")]
    DescribeTimeout(Duration),
    #[error("{step}: {source}")]
    Rtsp {
        step: &'static str,
        #[source]
        source: retina::Error,
    },
    #[error("the source offers no H.264, H.265 or AAC stream")]
    NoUsableStream,
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("no media for {0:?}")]
    NoMedia(Duration),
    #[error("the source: {0}")]
    Source(#[source] retina::Error),
    #[error("{what}: {source}")]
    Codec {
        what: &'static str,
        #[source]
        source: CodecError,
    },
    #[error("too many streams")]
    TooManyStreams,
    #[error("not audio or video")]
    NotMedia,
    #[error("composition offset out of range")]
    CompositionOffset,
    #[error(transparent)]
    Ended(#[from] super::stream::PublishEnded),
}

/// What is wrong with a pull source of the configuration.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0:?}: a stream name is 1 to 64 characters of [A-Za-z0-9_-]")]
    Name(String),
    #[error("{url}: {source}")]
    Url {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error("{0}: only rtsp:// URLs can be pulled")]
    Scheme(String),
}

/// Checks a source from the configuration.
pub fn check_source(source: &PullSource) -> Result<(), SourceError> {
    if !super::valid_stream_name(&source.name) {
        return Err(SourceError::Name(source.name.clone()));
    }
    let url = url::Url::parse(&source.url).map_err(|e| SourceError::Url {
        url: source.url.clone(),
        source: e,
    })?;
    if url.scheme() != "rtsp" {
        return Err(SourceError::Scheme(source.url.clone()));
    }
    Ok(())
}

/// Starts one `RtspPull` actor per source under the live branch.
pub async fn start_pulls(live: &Live, sources: &[PullSource]) {
    for source in sources {
        let branch = match live.supervision().branch(BranchKind::Live).await {
            Ok(branch) => branch,
            Err(err) => {
                tracing::error!(%err, "rtsp pull: no live branch");
                return;
            }
        };
        let args = RtspPullArgs {
            source: source.clone(),
            live: live.clone(),
        };
        if let Err(err) = Actor::spawn_linked(None, RtspPull, args, branch.get_cell()).await {
            tracing::error!(stream = %source.name, %err, "rtsp pull: cannot start");
        }
    }
}

pub struct RtspPull;

pub struct RtspPullArgs {
    pub source: PullSource,
    pub live: Live,
}

pub struct RtspPullState {
    task: tokio::task::JoinHandle<()>,
}

impl Actor for RtspPull {
    type Msg = ();
    type State = RtspPullState;
    type Arguments = RtspPullArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<()>,
        args: RtspPullArgs,
    ) -> Result<RtspPullState, ActorProcessingErr> {
        let task = tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_secs(1), MAX_BACKOFF);
            loop {
                let started = tokio::time::Instant::now();
                match pull_once(&args.source, &args.live).await {
                    Ok(()) => {
                        tracing::info!(stream = %args.source.name, "rtsp pull: the source ended")
                    }
                    Err(reason) => {
                        tracing::warn!(stream = %args.source.name, %reason, "rtsp pull failed")
                    }
                }
                // A session that ran a while resets the backoff.
                if started.elapsed() > MAX_BACKOFF {
                    backoff.reset();
                }
                tokio::time::sleep(backoff.next_delay().unwrap_or(MAX_BACKOFF)).await;
            }
        });
        Ok(RtspPullState { task })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<()>,
        state: &mut RtspPullState,
    ) -> Result<(), ActorProcessingErr> {
        state.task.abort();
        Ok(())
    }
}

/// The URL without credentials, for logs and the API.
fn redacted(url: &url::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// One track per pulled stream, from retina's parameters.
fn track_for(
    stream_index: usize,
    params: ParametersRef<'_>,
    clock_rate: u32,
) -> Result<Track, PullError> {
    let id = u32::try_from(stream_index + 1).map_err(|_| PullError::TooManyStreams)?;
    let codec_error = |what| move |source| PullError::Codec { what, source };
    let codec = match params {
        ParametersRef::Video(video) => {
            let record = video.extra_data();
            if video.rfc6381_codec().starts_with("avc1") {
                CodecConfig::H264(AvcConfig::parse(record).map_err(codec_error("avcC"))?)
            } else {
                CodecConfig::H265(HevcConfig::parse(record).map_err(codec_error("hvcC"))?)
            }
        }
        ParametersRef::Audio(audio) => CodecConfig::Aac(
            AudioSpecificConfig::parse(audio.extra_data())
                .map_err(codec_error("AudioSpecificConfig"))?,
        ),
        ParametersRef::Message(_) => return Err(PullError::NotMedia),
    };
    Ok(Track::new(id, clock_rate, codec))
}

/// DESCRIBE, SETUP of the first H.264/H.265 video and the first AAC audio
/// stream, and PLAY: the demuxed session and how many streams it plays.
async fn connect(
    source: &PullSource,
    url: url::Url,
    idle: Duration,
) -> Result<(retina::client::Demuxed, usize), PullError> {
    let creds = source.username.clone().map(|username| Credentials {
        username,
        password: source.password.clone().unwrap_or_default(),
    });
    let mut session = tokio::time::timeout(
        idle,
        retina::client::Session::describe(
            url,
            SessionOptions::default()
                .creds(creds)
                .user_agent(format!("StreamForge/{}", env!("CARGO_PKG_VERSION"))),
        ),
    )
    .await
    .map_err(|_| PullError::DescribeTimeout(idle))?
    .map_err(|source| PullError::Rtsp {
        step: "DESCRIBE",
        source,
    })?;
    let transport = match source.transport {
        PullTransport::Tcp => Transport::Tcp(Default::default()),
        PullTransport::Udp => Transport::Udp(Default::default()),
    };

    // The first H.264/H.265 video and the first AAC audio stream.
    let mut picked: Vec<usize> = Vec::new();
    let (mut video, mut audio) = (false, false);
    let choices: Vec<(usize, bool)> = session
        .streams()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match (s.media(), s.encoding_name()) {
            ("video", "h264" | "h265") => Some((i, true)),
            ("audio", "mpeg4-generic") => Some((i, false)),
            _ => None,
        })
        .collect();
    for (i, is_video) in choices {
        if (is_video && video) || (!is_video && audio) {
            continue;
        }
        session
            .setup(
                i,
                SetupOptions::default()
                    .transport(transport.clone())
                    .frame_format(FrameFormat::MP4),
            )
            .await
            .map_err(|source| PullError::Rtsp {
                step: "SETUP",
                source,
            })?;
        picked.push(i);
        if is_video {
            video = true;
        } else {
            audio = true;
        }
    }
    if picked.is_empty() {
        return Err(PullError::NoUsableStream);
    }
    let playing = session
        .play(PlayOptions::default())
        .await
        .and_then(|playing| playing.demuxed())
        .map_err(|source| PullError::Rtsp {
            step: "PLAY",
            source,
        })?;
    Ok((playing, picked.len()))
}

async fn pull_once(source: &PullSource, live: &Live) -> Result<(), PullError> {
    let url = url::Url::parse(&source.url)?;
    let shown = redacted(&url);
    let idle = live.options().idle_timeout;
    let (playing, streams) = connect(source, url, idle).await?;
    let publisher = live
        .start_publish(&source.name, IngestProtocol::RtspPull, shown)
        .await?;
    let result = relay(source, &publisher, playing, streams, idle).await;
    publisher.finish(result.as_ref().err().map(PullError::to_string));
    result
}

/// Hands the session's frames to the publish, with decode times, until the
/// source ends, fails or sends no media for `idle`.
async fn relay(
    source: &PullSource,
    publisher: &Publisher,
    mut playing: retina::client::Demuxed,
    streams: usize,
    idle: Duration,
) -> Result<(), PullError> {
    let mut tracks: HashMap<usize, Track> = HashMap::new();
    let mut published = false;
    let mut last_dts: HashMap<usize, i64> = HashMap::new();
    let mut orders: HashMap<usize, DecodeTimes<Frame>> = HashMap::new();
    // RTCP keeps arriving from a source whose media stopped: only media
    // counts as a sign of life.
    let mut media_deadline = tokio::time::Instant::now() + idle;
    let result = loop {
        let item = match tokio::time::timeout_at(media_deadline, playing.next()).await {
            Err(_) => break Err(PullError::NoMedia(idle)),
            Ok(None) => break Ok(()),
            Ok(Some(Err(err))) => break Err(PullError::Source(err)),
            Ok(Some(Ok(item))) => item,
        };
        let (stream, pts, keyframe, data, duration) = match item {
            CodecItem::VideoFrame(frame) => {
                let stream = frame.stream_id();
                if frame.has_new_parameters() {
                    tracks.remove(&stream);
                }
                let keyframe = frame.is_random_access_point();
                let pts = frame.timestamp().elapsed();
                (stream, pts, keyframe, frame.into_data(), None)
            }
            CodecItem::AudioFrame(frame) => {
                let length = frame.frame_length().get();
                (
                    frame.stream_id(),
                    frame.timestamp().elapsed(),
                    true,
                    frame.data().to_vec(),
                    Some(length),
                )
            }
            _ => continue,
        };
        if let std::collections::hash_map::Entry::Vacant(slot) = tracks.entry(stream) {
            let Some(s) = playing.streams().get(stream) else {
                continue;
            };
            let Some(params) = s.parameters() else {
                continue;
            };
            match track_for(stream, params, s.clock_rate_hz()) {
                Ok(track) => {
                    slot.insert(track);
                }
                Err(reason) => break Err(reason),
            }
            if published || tracks.len() == streams {
                let mut all: Vec<Track> = tracks.values().cloned().collect();
                all.sort_by_key(|t| t.id);
                if let Err(err) = publisher.take_tracks(all) {
                    break Err(err.into());
                }
                published = true;
            }
        }
        if !published {
            continue;
        }
        let Some(track) = tracks.get(&stream) else {
            continue;
        };
        let order = orders
            .entry(stream)
            .or_insert_with(|| DecodeTimes::for_codec(Some(&track.codec)));
        if !order.push(
            pts,
            Frame {
                keyframe,
                data,
                duration,
            },
        ) {
            tracing::debug!(source = %source.name, stream, "a frame reordered beyond the window was dropped");
        }
        let mut failed = None;
        while let Some(timed) = order.pull() {
            if let Err(err) = send(publisher, track, &mut last_dts, stream, timed).await {
                failed = Some(err);
                break;
            }
        }
        if let Some(err) = failed {
            break Err(err);
        }
        media_deadline = tokio::time::Instant::now() + idle;
    };
    // Frames still waiting in a reorder window.
    for (stream, order) in &mut orders {
        let Some(track) = tracks.get(stream) else {
            continue;
        };
        while let Some(timed) = order.flush() {
            if send(publisher, track, &mut last_dts, *stream, timed)
                .await
                .is_err()
            {
                break;
            }
        }
    }
    result
}

/// A frame waiting for its decode time.
struct Frame {
    keyframe: bool,
    data: Vec<u8>,
    duration: Option<u32>,
}

async fn send(
    publisher: &Publisher,
    track: &Track,
    last_dts: &mut HashMap<usize, i64>,
    stream: usize,
    (dts, pts, frame): (i64, i64, Frame),
) -> Result<(), PullError> {
    // The stated duration only matters for the last sample before an
    // end; the packager times each sample by the next one's start.
    let duration = frame.duration.unwrap_or_else(|| {
        last_dts
            .get(&stream)
            .and_then(|&p| u32::try_from(dts - p).ok())
            .filter(|&d| d > 0)
            .unwrap_or(track.timescale / 25)
    });
    last_dts.insert(stream, dts);
    let sample = Sample {
        track: track.id,
        dts,
        cts_offset: i32::try_from(pts - dts).map_err(|_| PullError::CompositionOffset)?,
        duration: NonZeroU32::new(duration).map_or(1, NonZeroU32::get),
        keyframe: frame.keyframe,
        data: frame.data.into(),
    };
    Ok(publisher.take_sample(sample)?)
}
