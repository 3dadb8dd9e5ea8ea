//! The optional live ladder: lower renditions of a live stream's video,
//! re-encoded by ffmpeg while the stream runs.
//!
//! ```text
//! live branch
//! └── Ladder{stream, presentation}      restarts a failed rung with backoff
//!     └── LiveLadderRung{v2}, LiveLadderRung{v3}…   one ffmpeg child each
//! ```
//!
//! A rung reads the source rendition (`v1`) the way a player would, from
//! the packager's shared parts: the init section, then every part of every
//! segment from the one it starts at, fed to ffmpeg's stdin as fragmented
//! MP4. ffmpeg decodes, scales and encodes H.264 with a keyframe wherever
//! the source has one (`-force_key_frames source`, no B-frames, no
//! look-ahead) and writes one fragment per frame to its stdout; the
//! fragments are read back with the fMP4 reader and pushed into the same
//! packager as a rung rendition. The rung's frames get the source frames'
//! times (its k-th frame the source's k-th decode time and its own
//! presentation time), so its segments end exactly where the source's do
//! and players switch between renditions at any segment.
//!
//! When the publisher leaves, a rung's input ends, ffmpeg drains and the
//! rung closes its last segment; if the publisher comes back, a new ffmpeg
//! run continues the rung after a discontinuity. A rung that fails closes
//! what it made; the ladder starts it again, after 1, 2 and 4 s, at the
//! source segment after its last one (still in the packager's store), and
//! gives it up after a fourth failure within ten minutes. Stopping a rung aborts its task, which drops the
//! ffmpeg child: its process group is killed and reaped.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::supervision::Backoff;
use crate::transcode::{LadderError, check_rung};

use bytes::Bytes;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde::{Deserialize, Serialize};
use streamforge_protocols::live::Follow;
use streamforge_protocols::media::{Sample, Track};
use streamforge_protocols::mp4::{FragmentedReader, ReaderEvent};
use tokio::io::AsyncWriteExt;

use super::LiveStream;
use crate::ffmpeg::{FfmpegError, Fmp4Child};
use crate::process::Processes;

/// The published video every rung is made from.
pub const SOURCE_RENDITION: &str = "v1";
/// Most rungs on one stream.
pub const MAX_RUNGS: usize = 8;
/// Restarts of a failed rung within [`RESTART_WINDOW`] before it is given
/// up (after 1, 2 and 4 s); a rung that fails now and then over a long
/// stream is always restarted.
const MAX_RESTARTS: usize = 3;
const RESTART_WINDOW: Duration = Duration::from_secs(600);
/// How often a rung waiting for media checks that its stream still exists.
const RECHECK: Duration = Duration::from_secs(1);

/// One rung of a live ladder: `[[live.streams]] ladder = [{ height = 360,
/// video_kbps = 800 }]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveLadderRung {
    /// Output height in pixels (even); rungs not below the source's height
    /// are skipped.
    pub height: u32,
    /// Video bit rate, kbit/s.
    pub video_kbps: u32,
}

/// Checks a ladder as configured: at most [`MAX_RUNGS`] rungs, even heights
/// from 64 to 4320, distinct, and sane bit rates.
pub fn check_live_ladder(ladder: &[LiveLadderRung]) -> Result<(), LadderError> {
    if ladder.len() > MAX_RUNGS {
        return Err(LadderError::TooMany { max: MAX_RUNGS });
    }
    for (i, rung) in ladder.iter().enumerate() {
        check_rung(
            i + 1,
            rung.height,
            (64, 4320),
            &[("video_kbps", rung.video_kbps, 50, 100_000)],
        )?;
        if ladder[..i].iter().any(|r| r.height == rung.height) {
            return Err(LadderError::SameHeight {
                height: rung.height,
            });
        }
    }
    Ok(())
}

/// The rendition names of a ladder's rungs below `source_height`, tallest
/// first: `v2`, `v3`, …
pub fn rung_names(ladder: &[LiveLadderRung], source_height: u32) -> Vec<(String, LiveLadderRung)> {
    let mut rungs: Vec<LiveLadderRung> = ladder
        .iter()
        .filter(|r| r.height < source_height)
        .copied()
        .collect();
    rungs.sort_by_key(|r| std::cmp::Reverse(r.height));
    rungs
        .into_iter()
        .enumerate()
        .map(|(i, r)| (format!("v{}", i + 2), r))
        .collect()
}

/// Supervises the rungs of one presentation of a stream.
pub struct Ladder;

pub struct LadderArgs {
    pub stream: Arc<LiveStream>,
    pub presentation: u64,
    pub rungs: Vec<(String, LiveLadderRung)>,
    pub processes: Processes,
}

pub struct LadderState {
    args: LadderArgs,
    running: HashMap<ActorId, usize>,
    restarts: HashMap<usize, Backoff>,
    /// Restarts scheduled but not done yet.
    pending: usize,
}

pub enum LadderMsg {
    Start(usize),
}

impl Ladder {
    async fn start_rung(
        myself: &ActorRef<LadderMsg>,
        state: &mut LadderState,
        index: usize,
    ) -> Result<(), ActorProcessingErr> {
        let Some((name, rung)) = state.args.rungs.get(index).cloned() else {
            return Ok(());
        };
        let args = LiveRungArgs {
            stream: state.args.stream.clone(),
            presentation: state.args.presentation,
            name,
            rung,
            processes: state.args.processes.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, LiveRung, args, myself.get_cell()).await?;
        state.running.insert(actor.get_id(), index);
        Ok(())
    }

    fn stop_when_idle(myself: &ActorRef<LadderMsg>, state: &LadderState) {
        if state.running.is_empty() && state.pending == 0 {
            myself.stop(Some("every rung finished".into()));
        }
    }
}

impl Actor for Ladder {
    type Msg = LadderMsg;
    type State = LadderState;
    type Arguments = LadderArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<LadderMsg>,
        args: LadderArgs,
    ) -> Result<LadderState, ActorProcessingErr> {
        let mut state = LadderState {
            args,
            running: HashMap::new(),
            restarts: HashMap::new(),
            pending: 0,
        };
        for index in 0..state.args.rungs.len() {
            Self::start_rung(&myself, &mut state, index).await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<LadderMsg>,
        message: LadderMsg,
        state: &mut LadderState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LadderMsg::Start(index) => {
                state.pending = state.pending.saturating_sub(1);
                if state.args.stream.presentation_is(state.args.presentation) {
                    Self::start_rung(&myself, state, index).await?;
                } else {
                    Self::stop_when_idle(&myself, state);
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<LadderMsg>,
        event: SupervisionEvent,
        state: &mut LadderState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.running.remove(&cell.get_id());
                Self::stop_when_idle(&myself, state);
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(index) = state.running.remove(&cell.get_id()) else {
                    return Ok(());
                };
                let name = state.args.rungs[index].0.clone();
                let stream = &state.args.stream;
                let delay = state
                    .restarts
                    .entry(index)
                    .or_insert_with(|| {
                        Backoff::new(Duration::from_secs(1), Duration::from_secs(8))
                            .with_limit(MAX_RESTARTS, RESTART_WINDOW)
                    })
                    .next_delay()
                    .filter(|_| stream.presentation_is(state.args.presentation));
                if let Some(delay) = delay {
                    tracing::warn!(stream = %stream.name(), rung = %name, %err, ?delay, "live rung failed; restarting");
                    state.pending += 1;
                    myself.send_after(delay, move || LadderMsg::Start(index));
                } else {
                    tracing::error!(stream = %stream.name(), rung = %name, %err, "live rung failed; giving it up");
                    // Packaging errors name the rung already.
                    let err = err.to_string();
                    stream.set_ladder_error(if err.starts_with(&format!("rung {name}")) {
                        err
                    } else {
                        format!("rung {name}: {err}")
                    });
                    Self::stop_when_idle(&myself, state);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

struct LiveRungArgs {
    stream: Arc<LiveStream>,
    presentation: u64,
    name: String,
    rung: LiveLadderRung,
    processes: Processes,
}

struct LiveRung;

struct LiveRungState {
    work: tokio::task::JoinHandle<()>,
    stream: Arc<LiveStream>,
    presentation: u64,
    name: String,
}

enum LiveRungMsg {
    Finished(Result<(), LiveRungError>),
}

impl Actor for LiveRung {
    type Msg = LiveRungMsg;
    type State = LiveRungState;
    type Arguments = LiveRungArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<LiveRungMsg>,
        args: LiveRungArgs,
    ) -> Result<LiveRungState, ActorProcessingErr> {
        let stream = args.stream.clone();
        let presentation = args.presentation;
        let name = args.name.clone();
        let work = tokio::spawn(async move {
            let result = run(&args).await;
            let _ = myself.cast(LiveRungMsg::Finished(result));
        });
        Ok(LiveRungState {
            work,
            stream,
            presentation,
            name,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<LiveRungMsg>,
        message: LiveRungMsg,
        state: &mut LiveRungState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LiveRungMsg::Finished(Ok(())) => {
                myself.stop(Some("the stream ended".into()));
                Ok(())
            }
            LiveRungMsg::Finished(Err(reason)) => {
                // A failing actor gets no `post_stop`: close the segment its
                // ffmpeg left open here, so that the restart continues at
                // the next one.
                state.close();
                Err(reason.into())
            }
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<LiveRungMsg>,
        state: &mut LiveRungState,
    ) -> Result<(), ActorProcessingErr> {
        // Kills ffmpeg (dropped with the task), then closes what it made.
        state.work.abort();
        state.close();
        Ok(())
    }
}

impl LiveRungState {
    /// Closes the rung's open segment, if it has one.
    fn close(&self) {
        self.stream.with_packager_mut(self.presentation, |p| {
            // A rung that never produced a track has nothing to close.
            let _ = p.finish_rung(&self.name);
        });
    }
}

/// Why a live rung's run failed (the ladder restarts it, or gives it up
/// and says why in the stream's `ladder_error`).
#[derive(Debug, thiserror::Error)]
pub enum LiveRungError {
    #[error(transparent)]
    Ffmpeg(#[from] FfmpegError),
    /// ffmpeg's output was not what a rung needs.
    #[error("{0}")]
    Output(&'static str),
    /// The rung's media could not be packaged (the error names the rung).
    #[error(transparent)]
    Packaging(#[from] streamforge_protocols::live::LiveError),
    #[error("the source's segment {msn} left the store before the rung read it")]
    SourceGone { msn: u64 },
    #[error("the source: {0}")]
    Source(#[source] streamforge_protocols::mp4::Mp4Error),
    #[error("writing to ffmpeg: {0}")]
    Write(#[source] std::io::Error),
    #[error("the feeder task: {0}")]
    Feeder(#[source] tokio::task::JoinError),
}

/// Why a run of ffmpeg ended without an error.
enum RunEnd {
    /// The stream ended (or another presentation replaced it).
    Ended,
    /// The publisher left (the stream may resume), or came back with a new
    /// init section: start again at the rung's next segment.
    Again,
}

/// A rung's whole life: one ffmpeg run per publisher run, until the stream
/// ends.
async fn run(args: &LiveRungArgs) -> Result<(), LiveRungError> {
    loop {
        let Some(from) = wait_for(args, |p| p.rung_start(&args.name, SOURCE_RENDITION)).await?
        else {
            return Ok(());
        };
        // The segment's epoch says which init section the run starts with.
        let Some(epoch) = wait_for(args, |p| match p.follow(SOURCE_RENDITION, from, 0) {
            Follow::Part { epoch, .. } => Some(Some(epoch)),
            Follow::Wait | Follow::Paused => None,
            Follow::Ended => Some(None),
            Follow::Gone | Follow::NextSegment => Some(Some(u32::MAX)),
        })
        .await?
        .flatten() else {
            return Ok(());
        };
        if epoch == u32::MAX {
            return Err(LiveRungError::SourceGone { msn: from });
        }
        match run_ffmpeg(args, from, epoch).await? {
            RunEnd::Ended => return Ok(()),
            RunEnd::Again => {}
        }
    }
}

/// Waits until `ask` answers `Some`, re-asking after every change of the
/// stream; `None` when the presentation is gone.
async fn wait_for<T>(
    args: &LiveRungArgs,
    mut ask: impl FnMut(&streamforge_protocols::live::LivePackager) -> Option<T>,
) -> Result<Option<T>, LiveRungError> {
    let mut changes = args.stream.subscribe();
    loop {
        changes.borrow_and_update();
        let Some(answer) = args.stream.with_presentation(args.presentation, &mut ask) else {
            return Ok(None);
        };
        if let Some(answer) = answer {
            return Ok(Some(answer));
        }
        // A missed wake-up costs at most RECHECK.
        let _ = tokio::time::timeout(RECHECK, changes.changed()).await;
    }
}

/// Decode times of the source frames fed to ffmpeg and not yet matched by
/// an output frame, and the smallest presentation time fed in this run.
#[derive(Default)]
struct FedTimes {
    dts: VecDeque<i64>,
    min_pts: Option<i64>,
}

fn ffmpeg_args(rung: LiveLadderRung, timescale: u32) -> Vec<String> {
    let mut out: Vec<String> = [
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        // The input describes itself in its init section: start decoding
        // at once instead of analysing seconds of it.
        "-probesize",
        "32768",
        "-analyzeduration",
        "0",
        "-f",
        "mp4",
        "-i",
        "pipe:0",
        "-map",
        "0:v:0",
        // One output frame per input frame, in order.
        "-fps_mode",
        "passthrough",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        // No B-frames, no look-ahead: a frame leaves as soon as it is coded.
        "-tune",
        "zerolatency",
        "-profile:v",
        "main",
        "-pix_fmt",
        "yuv420p",
        // Keyframes exactly where the source has them, and nowhere else.
        "-force_key_frames",
        "source",
        "-forced-idr",
        "1",
        "-g",
        "100000",
        "-sc_threshold",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    out.push("-vf".into());
    out.push(format!("scale=w=-2:h={}", rung.height));
    out.push("-b:v".into());
    out.push(format!("{}k", rung.video_kbps));
    out.push("-maxrate".into());
    out.push(format!("{}k", rung.video_kbps * 107 / 100));
    out.push("-bufsize".into());
    out.push(format!("{}k", rung.video_kbps));
    out.push("-video_track_timescale".into());
    out.push(timescale.to_string());
    out.extend(
        [
            "-f",
            "mp4",
            "-movflags",
            "empty_moov+default_base_moof+frag_every_frame",
            "-flush_packets",
            "1",
            "pipe:1",
        ]
        .map(String::from),
    );
    out
}

/// One ffmpeg run: feeds the source from segment `from` (of epoch `epoch`)
/// until the publisher leaves or the epoch changes, and packages the output.
async fn run_ffmpeg(args: &LiveRungArgs, from: u64, epoch: u32) -> Result<RunEnd, LiveRungError> {
    let stream = &args.stream;
    let Some(init) = stream
        .with_presentation(args.presentation, |p| {
            p.init_of(SOURCE_RENDITION, epoch).zip(
                p.renditions()
                    .find(|r| r.name == SOURCE_RENDITION)
                    .map(|r| r.track.timescale),
            )
        })
        .flatten()
    else {
        return Ok(RunEnd::Ended);
    };
    let (init, timescale) = init;
    let mut ffmpeg = Fmp4Child::spawn(
        &args.processes,
        &format!("ffmpeg live {} {}", stream.name(), args.name),
        ffmpeg_args(args.rung, timescale),
        true,
    )?;
    let stdin = ffmpeg
        .take_stdin()
        .ok_or(LiveRungError::Output("ffmpeg has no stdin"))?;
    let times = Arc::new(Mutex::new(FedTimes::default()));
    let feeder = tokio::spawn(feed(
        FeedArgs {
            stream: stream.clone(),
            presentation: args.presentation,
            from,
            epoch,
            init,
        },
        stdin,
        times.clone(),
    ));
    // The feeder is aborted (and stdin closed) whatever way this ends.
    let feeder = AbortOnDrop(feeder);

    let mut offset: Option<i64> = None;
    let mut last_dts: Option<i64> = None;
    let mut added = false;
    while let Some(event) = ffmpeg.next().await? {
        match event {
            ReaderEvent::Tracks(tracks) => {
                let track: Track = tracks
                    .into_iter()
                    .next()
                    .ok_or(LiveRungError::Output("ffmpeg's output has no track"))?;
                let added_now = stream.with_packager_mut(args.presentation, |p| {
                    p.add_rung(&args.name, SOURCE_RENDITION, track, from)
                });
                match added_now {
                    Some(result) => result?,
                    None => return Ok(RunEnd::Ended),
                }
                added = true;
            }
            ReaderEvent::Sample(sample) => {
                if !added {
                    return Err(LiveRungError::Output(
                        "ffmpeg sent samples before its track",
                    ));
                }
                let Some(sample) = retime(sample, &times, &mut offset, &mut last_dts) else {
                    continue;
                };
                match stream
                    .with_packager_mut(args.presentation, |p| p.push_rung(&args.name, sample))
                {
                    Some(Ok(())) => {}
                    Some(Err(streamforge_protocols::live::LiveError::Ended)) | None => {
                        return Ok(RunEnd::Ended);
                    }
                    Some(Err(e)) => return Err(e.into()),
                }
            }
        }
    }
    let stderr = ffmpeg.finish().await?;
    let fed = feeder.join().await?;
    tracing::debug!(stream = %stream.name(), rung = %args.name, ended = matches!(fed, RunEnd::Ended), %stderr, "rung encoder run done");
    stream.with_packager_mut(args.presentation, |p| p.finish_rung(&args.name));
    Ok(fed)
}

/// Gives an output frame the time of the source frame it was made from:
/// the k-th output frame (the encoder makes no B-frames, so output is in
/// presentation order) gets the k-th source decode time and its own
/// presentation time moved onto the source's timeline.
fn retime(
    mut sample: Sample,
    times: &Mutex<FedTimes>,
    offset: &mut Option<i64>,
    last_dts: &mut Option<i64>,
) -> Option<Sample> {
    let pts = sample.dts + i64::from(sample.cts_offset);
    let mut fed = times
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let offset = *offset.get_or_insert_with(|| fed.min_pts.unwrap_or(pts) - pts);
    let pts = pts + offset;
    let dts = fed.dts.pop_front().unwrap_or(pts).min(pts);
    drop(fed);
    if last_dts.is_some_and(|last| dts <= last) {
        // A frame the encoder invented (it never should): nothing to time it by.
        return None;
    }
    *last_dts = Some(dts);
    sample.dts = dts;
    sample.cts_offset = i32::try_from(pts - dts).ok()?;
    Some(sample)
}

struct FeedArgs {
    stream: Arc<LiveStream>,
    presentation: u64,
    from: u64,
    epoch: u32,
    init: Bytes,
}

/// Writes the source's init section and then its parts to ffmpeg, noting
/// each frame's times first; returns when the input ends.
async fn feed(
    args: FeedArgs,
    mut stdin: tokio::process::ChildStdin,
    times: Arc<Mutex<FedTimes>>,
) -> Result<RunEnd, LiveRungError> {
    let mut parser = FragmentedReader::new();
    let note = |parser: &mut FragmentedReader, data: &[u8]| -> Result<(), LiveRungError> {
        parser.feed(data);
        while let Some(event) = parser.poll().map_err(LiveRungError::Source)? {
            if let ReaderEvent::Sample(s) = event {
                let mut fed = times
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let pts = s.dts + i64::from(s.cts_offset);
                fed.dts.push_back(s.dts);
                fed.min_pts = Some(fed.min_pts.map_or(pts, |m| m.min(pts)));
            }
        }
        Ok(())
    };
    note(&mut parser, &args.init)?;
    stdin
        .write_all(&args.init)
        .await
        .map_err(LiveRungError::Write)?;
    let mut changes = args.stream.subscribe();
    let (mut msn, mut part) = (args.from, 0usize);
    let end = loop {
        changes.borrow_and_update();
        let Some(next) = args
            .stream
            .with_presentation(args.presentation, |p| p.follow(SOURCE_RENDITION, msn, part))
        else {
            break RunEnd::Ended;
        };
        match next {
            Follow::Part { epoch, .. } if epoch != args.epoch => break RunEnd::Again,
            Follow::Part { data, .. } => {
                note(&mut parser, &data)?;
                stdin.write_all(&data).await.map_err(LiveRungError::Write)?;
                part += 1;
                continue;
            }
            Follow::NextSegment => {
                msn += 1;
                part = 0;
                continue;
            }
            Follow::Paused => break RunEnd::Again,
            Follow::Ended => break RunEnd::Ended,
            Follow::Gone => return Err(LiveRungError::SourceGone { msn }),
            Follow::Wait => {}
        }
        let _ = tokio::time::timeout(RECHECK, changes.changed()).await;
    };
    // End of input: ffmpeg drains what it holds and exits.
    drop(stdin);
    Ok(end)
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<Result<T, LiveRungError>> {
    async fn join(mut self) -> Result<T, LiveRungError> {
        (&mut self.0).await.map_err(LiveRungError::Feeder)?
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rungs_below_the_source_are_named_tallest_first() {
        let ladder = [
            LiveLadderRung {
                height: 240,
                video_kbps: 300,
            },
            LiveLadderRung {
                height: 720,
                video_kbps: 2500,
            },
            LiveLadderRung {
                height: 480,
                video_kbps: 1200,
            },
        ];
        let names: Vec<(String, u32)> = rung_names(&ladder, 720)
            .into_iter()
            .map(|(n, r)| (n, r.height))
            .collect();
        assert_eq!(names, [("v2".into(), 480), ("v3".into(), 240)]);
        assert!(check_live_ladder(&ladder).is_ok());
        let odd = [LiveLadderRung {
            height: 241,
            video_kbps: 300,
        }];
        assert!(
            check_live_ladder(&odd)
                .unwrap_err()
                .to_string()
                .contains("even")
        );
        let twice = [ladder[0], ladder[0]];
        assert!(
            check_live_ladder(&twice)
                .unwrap_err()
                .to_string()
                .contains("two rungs")
        );
    }

    #[test]
    fn output_frames_take_the_source_frames_times() {
        let times = Mutex::new(FedTimes {
            // Source decode times; presentation starts two frames later.
            dts: VecDeque::from([1000, 1040, 1080, 1120]),
            min_pts: Some(1080),
        });
        let frame = |dts: i64| Sample {
            track: 1,
            dts,
            cts_offset: 0,
            duration: 40,
            keyframe: dts == 0,
            data: Bytes::new(),
        };
        let (mut offset, mut last) = (None, None);
        let out: Vec<(i64, i32)> = [0, 40, 80]
            .into_iter()
            .filter_map(|t| retime(frame(t), &times, &mut offset, &mut last))
            .map(|s| (s.dts, s.cts_offset))
            .collect();
        assert_eq!(out, [(1000, 80), (1040, 80), (1080, 80)]);
    }
}
