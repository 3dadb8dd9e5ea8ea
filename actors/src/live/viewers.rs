//! Viewer sessions: one `ViewerSession` actor per playback session of a
//! live stream, under the `viewers` branch.
//!
//! A session is known by a cookie (`sf_viewer`, path `/live/{stream}/`)
//! that browsers, AVPlayer and ffmpeg's HLS reader send back; a client that
//! keeps no cookies is known by its address and user agent. Each request of
//! the session is reported to its actor, which keeps what the viewer is
//! doing (rendition, newest segment and part asked for, requests, bytes,
//! blocking requests held now and at most) and ends the session after
//! [`VIEWER_IDLE`] without a request. Blocking playlist reloads and
//! preload-hint parts are held by the HTTP handler on the stream's version
//! channel, each under a [`HoldGuard`] of its session: a session holds at
//! most [`MAX_HELD`] requests at once, so one misbehaving player cannot
//! pin an unbounded number of them (clients without cookies share their
//! address's session and are not limited). The media itself is the packager's
//! shared `Bytes`, never copied per viewer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use crate::supervision::{BranchKind, Supervision};

/// A session ends this long after its last request.
pub const VIEWER_IDLE: Duration = Duration::from_secs(15);
/// Requests one session may have held open at once (a player needs two or
/// three: a playlist reload per rendition and the preload-hinted part).
pub const MAX_HELD: usize = 8;
/// Most sessions tracked at once; beyond, requests are served untracked.
const MAX_SESSIONS: usize = 100_000;
/// The session cookie's name.
pub const COOKIE: &str = "sf_viewer";

/// What a viewer asked for.
#[derive(Clone, Debug)]
pub struct ViewerRequest {
    /// `master.m3u8`, `manifest.mpd`, or a file of a rendition.
    pub rendition: Option<String>,
    pub file: String,
    /// For media: its segment and part.
    pub msn: Option<u64>,
    pub part: Option<u32>,
    /// Bytes sent (media of known length).
    pub bytes: u64,
}

/// A session as `GET /api/live/{stream}/viewers` shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ViewerSummary {
    pub id: String,
    pub remote: String,
    pub user_agent: Option<String>,
    pub rendition: Option<String>,
    pub last_file: Option<String>,
    pub last_msn: Option<u64>,
    pub last_part: Option<u32>,
    /// Times the session moved to another rendition (ABR switches).
    pub switches: u64,
    pub requests: u64,
    pub bytes: u64,
    pub held: usize,
    pub max_held: usize,
    pub since_secs: u64,
    pub idle_ms: u64,
}

struct Entry {
    id: String,
    stream: String,
    /// The address + user agent key, for a client without cookies.
    anonymous: String,
    actor: ActorRef<ViewerMsg>,
    held: AtomicUsize,
}

/// One viewer's session, handed to the HTTP handler.
#[derive(Clone)]
pub struct ViewerSession {
    entry: Arc<Entry>,
    /// The client sent the session's cookie: the session is one player.
    /// Clients without cookies behind one address (a NAT, a proxy, a load
    /// generator) share a session and are not held to one player's limit.
    identified: bool,
    /// The cookie to set: the client did not send it.
    pub set_cookie: Option<String>,
}

/// Holds one request open for its session; dropping it ends the hold.
pub struct HoldGuard {
    entry: Arc<Entry>,
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        self.entry.held.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ViewerSession {
    pub fn id(&self) -> &str {
        &self.entry.id
    }

    /// Reports a request to the session's actor.
    pub fn saw(&self, request: ViewerRequest) {
        let _ = self.entry.actor.cast(ViewerMsg::Request(request));
    }

    /// Reports bytes sent after the response began (a growing segment).
    pub fn sent(&self, bytes: u64) {
        let _ = self.entry.actor.cast(ViewerMsg::Sent(bytes));
    }

    /// Starts holding a request; `None` when the session (identified by its
    /// cookie) already holds [`MAX_HELD`].
    pub fn hold(&self) -> Option<HoldGuard> {
        let held = self.entry.held.fetch_add(1, Ordering::Relaxed) + 1;
        if self.identified && held > MAX_HELD {
            self.entry.held.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let _ = self.entry.actor.cast(ViewerMsg::Held(held));
        Some(HoldGuard {
            entry: self.entry.clone(),
        })
    }
}

/// The registry of viewer sessions; cheap to clone.
#[derive(Clone)]
pub struct Viewers {
    inner: Arc<Inner>,
}

struct Inner {
    supervision: Supervision,
    idle: Duration,
    sessions: Mutex<Sessions>,
}

#[derive(Default)]
struct Sessions {
    by_id: HashMap<String, Arc<Entry>>,
    by_anonymous: HashMap<String, String>,
}

impl Viewers {
    pub fn new(supervision: Supervision) -> Self {
        Self::with_idle(supervision, VIEWER_IDLE)
    }

    /// Sessions that end after `idle` without a request.
    pub fn with_idle(supervision: Supervision, idle: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                supervision,
                idle,
                sessions: Mutex::new(Sessions::default()),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session of a request to `stream`: the one its cookie names, or
    /// the one of its address and user agent, or a new one (with a cookie
    /// to set). `None` when no more sessions can be tracked.
    pub async fn session(
        &self,
        stream: &str,
        cookie: Option<&str>,
        remote: &str,
        user_agent: Option<&str>,
    ) -> Option<ViewerSession> {
        let anonymous = format!("{stream}\n{remote}\n{}", user_agent.unwrap_or(""));
        let cookie = cookie.filter(|c| valid_id(c));
        let id = {
            let sessions = self.lock();
            let known = match cookie {
                Some(id) => sessions.by_id.get(id),
                None => sessions
                    .by_anonymous
                    .get(&anonymous)
                    .and_then(|id| sessions.by_id.get(id)),
            };
            if let Some(entry) = known.filter(|e| e.stream == stream) {
                return Some(ViewerSession {
                    entry: entry.clone(),
                    identified: cookie.is_some(),
                    set_cookie: cookie.is_none().then(|| set_cookie(stream, &entry.id)),
                });
            }
            if sessions.by_id.len() >= MAX_SESSIONS {
                return None;
            }
            // A cookie from before a restart names the session again; one
            // of another stream's session does not.
            match cookie {
                Some(id) if !sessions.by_id.contains_key(id) => id.to_owned(),
                _ => uuid::Uuid::new_v4().simple().to_string(),
            }
        };
        let new_cookie = (cookie != Some(id.as_str())).then(|| set_cookie(stream, &id));
        let branch = self
            .inner
            .supervision
            .branch(BranchKind::Viewers)
            .await
            .ok()?;
        let args = ViewerArgs {
            viewers: self.clone(),
            id: id.clone(),
            stream: stream.to_owned(),
            remote: remote.to_owned(),
            user_agent: user_agent.map(str::to_owned),
        };
        let (actor, _) = Actor::spawn_linked(None, ViewerSessionActor, args, branch.get_cell())
            .await
            .ok()?;
        let entry = Arc::new(Entry {
            id: id.clone(),
            stream: stream.to_owned(),
            anonymous: anonymous.clone(),
            actor,
            held: AtomicUsize::new(0),
        });
        let mut sessions = self.lock();
        // Two first requests at once: keep the first session made.
        if let Some(existing) = sessions.by_id.get(&id).cloned() {
            drop(sessions);
            entry.actor.stop(None);
            return Some(ViewerSession {
                entry: existing,
                identified: new_cookie.is_none(),
                set_cookie: new_cookie,
            });
        }
        sessions.by_id.insert(id.clone(), entry.clone());
        sessions.by_anonymous.insert(anonymous, id);
        Some(ViewerSession {
            entry,
            identified: new_cookie.is_none(),
            set_cookie: new_cookie,
        })
    }

    /// Sessions of `stream` now.
    pub fn count(&self, stream: &str) -> usize {
        self.lock()
            .by_id
            .values()
            .filter(|e| e.stream == stream)
            .count()
    }

    /// Every session of `stream`, as its actor sees it.
    pub async fn list(&self, stream: &str) -> Vec<ViewerSummary> {
        let actors: Vec<ActorRef<ViewerMsg>> = self
            .lock()
            .by_id
            .values()
            .filter(|e| e.stream == stream)
            .map(|e| e.actor.clone())
            .collect();
        let mut out = Vec::with_capacity(actors.len());
        for actor in actors {
            if let Ok(summary) = ractor::call_t!(actor, ViewerMsg::Summary, 1000) {
                out.push(summary);
            }
        }
        out.sort_by(|a, b| b.since_secs.cmp(&a.since_secs).then(a.id.cmp(&b.id)));
        out
    }

    /// Removes session `id` if `actor` is its actor (not a duplicate made
    /// by a race and stopped at once).
    fn forget(&self, id: &str, actor: ractor::ActorId) {
        let mut sessions = self.lock();
        if sessions
            .by_id
            .get(id)
            .is_none_or(|e| e.actor.get_id() != actor)
        {
            return;
        }
        if let Some(entry) = sessions.by_id.remove(id)
            && sessions.by_anonymous.get(&entry.anonymous) == Some(&entry.id)
        {
            sessions.by_anonymous.remove(&entry.anonymous);
        }
    }
}

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn set_cookie(stream: &str, id: &str) -> String {
    format!("{COOKIE}={id}; Path=/live/{stream}/; HttpOnly; SameSite=Lax")
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

struct ViewerSessionActor;

struct ViewerArgs {
    viewers: Viewers,
    id: String,
    stream: String,
    remote: String,
    user_agent: Option<String>,
}

struct ViewerState {
    args: ViewerArgs,
    started: Instant,
    last_seen: Instant,
    rendition: Option<String>,
    last_file: Option<String>,
    last_msn: Option<u64>,
    last_part: Option<u32>,
    switches: u64,
    requests: u64,
    bytes: u64,
    held: usize,
    max_held: usize,
}

enum ViewerMsg {
    Request(ViewerRequest),
    Sent(u64),
    Held(usize),
    Idle,
    Summary(RpcReplyPort<ViewerSummary>),
}

impl Actor for ViewerSessionActor {
    type Msg = ViewerMsg;
    type State = ViewerState;
    type Arguments = ViewerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ViewerMsg>,
        args: ViewerArgs,
    ) -> Result<ViewerState, ActorProcessingErr> {
        tracing::debug!(stream = %args.stream, viewer = %args.id, remote = %args.remote, "viewer session started");
        myself.send_after(args.viewers.inner.idle, || ViewerMsg::Idle);
        let now = Instant::now();
        Ok(ViewerState {
            args,
            started: now,
            last_seen: now,
            rendition: None,
            last_file: None,
            last_msn: None,
            last_part: None,
            switches: 0,
            requests: 0,
            bytes: 0,
            held: 0,
            max_held: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ViewerMsg>,
        message: ViewerMsg,
        state: &mut ViewerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ViewerMsg::Request(request) => {
                state.last_seen = Instant::now();
                state.requests += 1;
                state.bytes += request.bytes;
                if let Some(rendition) = request.rendition {
                    // Audio renditions play beside video; a switch is
                    // between renditions of the same kind.
                    let kind = |r: &str| r.chars().next();
                    if let Some(previous) = &state.rendition
                        && *previous != rendition
                        && kind(previous) == kind(&rendition)
                    {
                        state.switches += 1;
                    }
                    if rendition.starts_with('v') || state.rendition.is_none() {
                        state.rendition = Some(rendition);
                    }
                }
                if request.msn.is_some() {
                    state.last_msn = request.msn;
                    state.last_part = request.part;
                }
                state.last_file = Some(request.file);
            }
            ViewerMsg::Sent(bytes) => {
                state.last_seen = Instant::now();
                state.bytes += bytes;
            }
            ViewerMsg::Held(held) => {
                state.last_seen = Instant::now();
                state.held = held;
                state.max_held = state.max_held.max(held);
            }
            ViewerMsg::Idle => {
                let held = state
                    .args
                    .viewers
                    .lock()
                    .by_id
                    .get(&state.args.id)
                    .map_or(0, |e| e.held.load(Ordering::Relaxed));
                let limit = state.args.viewers.inner.idle;
                let idle = state.last_seen.elapsed();
                if idle >= limit && held == 0 {
                    myself.stop(Some("idle".into()));
                } else {
                    let again = limit.saturating_sub(idle).max(limit / 4);
                    myself.send_after(again, || ViewerMsg::Idle);
                }
            }
            ViewerMsg::Summary(reply) => {
                let held = state
                    .args
                    .viewers
                    .lock()
                    .by_id
                    .get(&state.args.id)
                    .map_or(0, |e| e.held.load(Ordering::Relaxed));
                let _ = reply.send(ViewerSummary {
                    id: state.args.id.clone(),
                    remote: state.args.remote.clone(),
                    user_agent: state.args.user_agent.clone(),
                    rendition: state.rendition.clone(),
                    last_file: state.last_file.clone(),
                    last_msn: state.last_msn,
                    last_part: state.last_part,
                    switches: state.switches,
                    requests: state.requests,
                    bytes: state.bytes,
                    held,
                    max_held: state.max_held,
                    since_secs: state.started.elapsed().as_secs(),
                    idle_ms: u64::try_from(state.last_seen.elapsed().as_millis())
                        .unwrap_or(u64::MAX),
                });
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ViewerMsg>,
        state: &mut ViewerState,
    ) -> Result<(), ActorProcessingErr> {
        state.args.viewers.forget(&state.args.id, myself.get_id());
        tracing::debug!(stream = %state.args.stream, viewer = %state.args.id, requests = state.requests, bytes = state.bytes, "viewer session ended");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Processes;

    #[tokio::test]
    async fn sessions_are_found_again_hold_a_bounded_number_and_end_when_idle() {
        let supervision = Supervision::start(Processes::new()).await.unwrap();
        let viewers = Viewers::with_idle(supervision.clone(), Duration::from_millis(300));
        let first = viewers
            .session("cam", None, "10.0.0.1", Some("hls.js"))
            .await
            .unwrap();
        let cookie = first.set_cookie.clone().unwrap();
        assert!(cookie.starts_with("sf_viewer="), "{cookie}");
        // Without a cookie: the same address and agent is the same session.
        let again = viewers
            .session("cam", None, "10.0.0.1", Some("hls.js"))
            .await
            .unwrap();
        assert_eq!(again.id(), first.id());
        // With it: the same session from anywhere; another agent is another.
        let by_cookie = viewers
            .session("cam", Some(first.id()), "10.0.0.9", None)
            .await
            .unwrap();
        assert_eq!(by_cookie.id(), first.id());
        assert!(by_cookie.set_cookie.is_none());
        let other = viewers
            .session("cam", None, "10.0.0.1", Some("ffmpeg"))
            .await
            .unwrap();
        assert_ne!(other.id(), first.id());
        // A session of another stream is not this one's.
        let elsewhere = viewers
            .session("door", Some(first.id()), "10.0.0.1", None)
            .await;
        assert!(elsewhere.is_none_or(|s| s.id() != first.id()));
        assert_eq!(viewers.count("cam"), 2);

        first.saw(ViewerRequest {
            rendition: Some("v1".into()),
            file: "3.1.m4s".into(),
            msn: Some(3),
            part: Some(1),
            bytes: 1000,
        });
        first.saw(ViewerRequest {
            rendition: Some("v2".into()),
            file: "media.m3u8".into(),
            msn: None,
            part: None,
            bytes: 0,
        });
        let guards: Vec<HoldGuard> = (0..MAX_HELD).map(|_| by_cookie.hold().unwrap()).collect();
        assert!(by_cookie.hold().is_none(), "more than {MAX_HELD} held");
        // Clients without cookies sharing an address are not one player.
        let shared = first.hold();
        assert!(shared.is_some());
        drop(shared);
        let listed = viewers.list("cam").await;
        let me = listed.iter().find(|v| v.id == first.id()).unwrap();
        assert_eq!(
            (me.requests, me.bytes, me.switches, me.held, me.last_msn),
            (2, 1000, 1, MAX_HELD, Some(3))
        );
        assert_eq!(me.rendition.as_deref(), Some("v2"));
        // Held requests keep a session alive past its idle time.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(viewers.count("cam"), 1);
        drop(guards);
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(viewers.count("cam"), 0);
        supervision.shutdown(Duration::from_secs(1)).await;
    }

    #[test]
    fn cookies_are_found_and_ids_checked() {
        let header = "theme=dark; sf_viewer=0123456789abcdef0123456789abcdef; x=1";
        assert_eq!(
            cookie_value(header, COOKIE),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(cookie_value("a=b", COOKIE), None);
        assert!(valid_id("0123456789abcdef0123456789abcdef"));
        assert!(!valid_id("../../etc"));
        assert!(!valid_id("0123456789abcdef0123456789abcdeg"));
        assert_eq!(
            set_cookie("cam", "ab"),
            "sf_viewer=ab; Path=/live/cam/; HttpOnly; SameSite=Lax"
        );
    }
}
