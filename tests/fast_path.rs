//! The fast path for cached playlist reloads (`http::fast`) answers what
//! the router answers, and leaves to the router every request the
//! middleware layers would treat differently.

mod common;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use streamforge::config::Config;
use streamforge::http::fast::FastPath;
use tower::ServiceExt;

use std::sync::{Arc, Mutex};

use common::TestServer;

const PLAYLIST: &str = "/vod/fp/v1/media.m3u8";
const MANIFEST: &str = "/vod/fp/manifest.mpd";
const SMALL: &str = "/vod/fp/v1/small.m3u8";

/// A request: method, path and headers.
type Case<'a> = (Method, &'a str, Vec<(&'a str, &'a str)>);

fn write_media(data: &std::path::Path) {
    let media = data.join("media/assets/fp/media");
    std::fs::create_dir_all(media.join("v1")).unwrap();
    let mut playlist = String::from(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n",
    );
    for i in 1..=40 {
        playlist.push_str(&format!("#EXTINF:2.000,\nseg-{i:05}.m4s\n"));
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    std::fs::write(media.join("v1/media.m3u8"), playlist).unwrap();
    std::fs::write(media.join("v1/small.m3u8"), "#EXTM3U\n#EXT-X-ENDLIST\n").unwrap();
    let mpd = format!(
        "<?xml version=\"1.0\"?>\n<MPD type=\"static\">{}</MPD>\n",
        "<Period/>".repeat(60)
    );
    std::fs::write(media.join("manifest.mpd"), mpd).unwrap();
    std::fs::write(media.join("v1/seg-00001.m4s"), vec![7u8; 1024]).unwrap();
}

fn request(method: Method, path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

/// An answer as the connection sends it (`http::outgoing`, which both
/// paths' answers pass through), in parts.
async fn parts(mut response: Response) -> (StatusCode, HeaderMap, Vec<u8>) {
    streamforge::http::outgoing(&mut response);
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

/// Makes sure the cached copy of `path` is fresh (younger than the 500 ms
/// the fast path serves a copy for): the router reloads a stale one.
async fn warm(router: &Router, path: &str) {
    let response = router
        .clone()
        .oneshot(request(Method::GET, path, &[]))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
}

/// The router's answer and the fast path's to the same request, with the
/// `x-request-id` each made checked and taken out.
async fn both(
    router: &Router,
    fast: &FastPath,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(
    (StatusCode, HeaderMap, Vec<u8>),
    (StatusCode, HeaderMap, Vec<u8>),
)> {
    warm(router, path).await;
    let fast_answer = fast.answer(&request(method.clone(), path, headers))?;
    let routed = router
        .clone()
        .oneshot(request(method, path, headers))
        .await
        .unwrap();
    let mut answers = [parts(routed).await, parts(fast_answer).await];
    let asked = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-request-id"));
    for (_, headers, _) in &mut answers {
        let id = headers.remove("x-request-id").expect("a request id");
        match asked {
            Some((_, asked)) => assert_eq!(id, *asked, "the client's request id comes back"),
            None => assert_eq!(id.len(), 36, "a UUID: {id:?}"),
        }
    }
    let [routed, fast] = answers;
    Some((routed, fast))
}

/// A server with the test's media, its router (built in-process, with every
/// layer) and its fast path.
async fn serving() -> (TestServer, Router, FastPath) {
    let server = TestServer::start().await;
    write_media(server.data.path());
    let state = server.running.as_ref().unwrap().app_state();
    let router = streamforge::http::router(state.clone(), &Config::default().http);
    let fast = FastPath::new(&state);
    (server, router, fast)
}

#[tokio::test]
async fn cached_playlists_are_answered_as_the_router_answers_them() {
    let (server, router, fast) = serving().await;

    // Nothing cached yet: the router answers (and caches) it.
    assert!(
        fast.answer(&request(Method::GET, PLAYLIST, &[])).is_none(),
        "a playlist not in the cache goes to the router"
    );
    let ((_, first, _), _) = both(&router, &fast, Method::GET, PLAYLIST, &[])
        .await
        .expect("a cached playlist is answered");
    let etag = first[header::ETAG].to_str().unwrap().to_owned();
    let weak = format!("W/{etag}");
    let modified = first[header::LAST_MODIFIED].to_str().unwrap().to_owned();

    let cases: Vec<Case> = vec![
        (Method::GET, PLAYLIST, vec![]),
        (Method::HEAD, PLAYLIST, vec![]),
        (Method::GET, MANIFEST, vec![]),
        (Method::GET, SMALL, vec![]),
        (
            Method::GET,
            PLAYLIST,
            vec![("x-request-id", "from-the-client")],
        ),
        (Method::GET, PLAYLIST, vec![("accept-encoding", "gzip")]),
        (
            Method::HEAD,
            PLAYLIST,
            vec![("accept-encoding", "gzip, br")],
        ),
        (Method::GET, MANIFEST, vec![("accept-encoding", "gzip")]),
        (Method::GET, PLAYLIST, vec![("if-none-match", &etag)]),
        (Method::GET, PLAYLIST, vec![("if-none-match", "\"other\"")]),
        (
            Method::GET,
            PLAYLIST,
            vec![("if-none-match", &weak), ("accept-encoding", "gzip")],
        ),
        (
            Method::GET,
            PLAYLIST,
            vec![("if-modified-since", &modified)],
        ),
        (Method::HEAD, PLAYLIST, vec![("if-none-match", &etag)]),
        // A 304 to a client that accepts only brotli: no body to compress.
        (
            Method::GET,
            PLAYLIST,
            vec![("if-none-match", &etag), ("accept-encoding", "br")],
        ),
    ];
    for (method, path, headers) in cases {
        let (routed, fast) = both(&router, &fast, method.clone(), path, &headers)
            .await
            .unwrap_or_else(|| panic!("{method} {path} {headers:?} is answered by the fast path"));
        assert_eq!(routed, fast, "{method} {path} {headers:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn requests_the_layers_treat_differently_go_to_the_router() {
    let (server, router, fast) = serving().await;
    warm(&router, PLAYLIST).await;
    assert!(fast.answer(&request(Method::GET, PLAYLIST, &[])).is_some());

    let refused: Vec<Case> = vec![
        // CORS for browsers on another origin.
        (
            Method::GET,
            PLAYLIST,
            vec![("origin", "https://player.example")],
        ),
        // The compression layer's to judge (no brotli copy is kept).
        (Method::GET, PLAYLIST, vec![("accept-encoding", "br")]),
        (Method::GET, PLAYLIST, vec![("accept-encoding", "gzip;q=0")]),
        (Method::GET, PLAYLIST, vec![("range", "bytes=0-99")]),
        (Method::POST, PLAYLIST, vec![]),
        (Method::DELETE, PLAYLIST, vec![]),
        // Decoded by the router's extractor; refused by its path checks.
        (Method::GET, "/vod/fp/v1/media.m3u%38", vec![]),
        (Method::GET, "/vod/fp/v1/../v1/media.m3u8", vec![]),
        (Method::GET, "/vod/fp//v1/media.m3u8", vec![]),
        // Not a manifest, or not cached.
        (Method::GET, "/vod/fp/v1/seg-00001.m4s", vec![]),
        (Method::GET, "/vod/fp/v1/absent.m3u8", vec![]),
        (Method::GET, "/vod//v1/media.m3u8", vec![]),
    ];
    for (method, path, headers) in refused {
        // The plain request is answered right before: the copy is fresh, so
        // the refusal is the request's doing.
        warm(&router, PLAYLIST).await;
        assert!(fast.answer(&request(Method::GET, PLAYLIST, &[])).is_some());
        assert!(
            fast.answer(&request(method.clone(), path, &headers))
                .is_none(),
            "{method} {path} {headers:?} goes to the router"
        );
    }
    // A request with a body goes to the router (its body limit).
    warm(&router, PLAYLIST).await;
    assert!(fast.answer(&request(Method::GET, PLAYLIST, &[])).is_some());
    let with_body = Request::get(PLAYLIST).body(Body::from("x")).unwrap();
    assert!(fast.answer(&with_body).is_none());
    // A copy older than 500 ms is the router's to reload.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(fast.answer(&request(Method::GET, PLAYLIST, &[])).is_none());

    // Fast answers are counted under the route, as the router counts them.
    let count = || {
        let metrics = reqwest::get(server.url("/metrics"));
        async move {
            let text = metrics.await.unwrap().text().await.unwrap();
            text.lines()
                .find(|line| {
                    line.starts_with("streamforge_http_requests_total{")
                        && line.contains("route=\"/vod/{asset}/{*path}\"")
                        && line.contains("status=\"200\"")
                        && line.contains("method=\"GET\"")
                })
                .and_then(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        }
    };
    let before = count().await;
    // The router's own answer counts too.
    warm(&router, PLAYLIST).await;
    let before = before + 1;
    for _ in 0..3 {
        assert!(fast.answer(&request(Method::GET, PLAYLIST, &[])).is_some());
    }
    assert_eq!(count().await, before + 3);
    server.stop().await;
}

#[tokio::test]
async fn signed_playback_turns_the_fast_path_off() {
    let server = TestServer::start_with(|config| {
        config.auth.playback = streamforge::config::PlaybackMode::Signed;
    })
    .await;
    write_media(server.data.path());
    let state = server.running.as_ref().unwrap().app_state();
    let router = streamforge::http::router(state.clone(), &Config::default().http);
    let fast = FastPath::new(&state);
    let unsigned = router
        .clone()
        .oneshot(request(Method::GET, PLAYLIST, &[]))
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::FORBIDDEN);
    assert!(fast.answer(&request(Method::GET, PLAYLIST, &[])).is_none());
    server.stop().await;
}

#[tokio::test]
async fn a_node_without_the_api_role_has_no_fast_path() {
    let server = TestServer::start_with(|config| {
        config.node.roles = vec![streamforge_actors::cluster::Role::Worker];
    })
    .await;
    let state = server.running.as_ref().unwrap().app_state();
    assert!(
        FastPath::new(&state)
            .answer(&request(Method::GET, PLAYLIST, &[]))
            .is_none()
    );
    server.stop().await;
}

/// What the access log writes, in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    /// The lines written since the last call, with the time each request
    /// took (which differs between two requests) taken out.
    fn take_lines(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| {
                line.split(' ')
                    .filter(|field| !field.starts_with("micros="))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }
}

#[tokio::test]
async fn the_access_log_line_of_a_fast_answer_is_the_routers() {
    let (server, router, fast) = serving().await;
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_env_filter("streamforge::access=info")
        .with_ansi(false)
        .without_time()
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);

    let asked = [("x-request-id", "from-the-client")];
    warm(&router, PLAYLIST).await;
    captured.take_lines();
    let routed = router
        .clone()
        .oneshot(request(Method::GET, PLAYLIST, &asked))
        .await
        .unwrap();
    assert_eq!(routed.status(), StatusCode::OK);
    let routed_lines = captured.take_lines();
    let answered = fast
        .answer(&request(Method::GET, PLAYLIST, &asked))
        .expect("the fast path answers with the access log on");
    assert_eq!(answered.status(), StatusCode::OK);
    let fast_lines = captured.take_lines();
    assert_eq!(routed_lines.len(), 1, "{routed_lines:?}");
    assert!(
        routed_lines[0].contains("from-the-client")
            && routed_lines[0].contains("route=\"/vod/{asset}/{*path}\""),
        "{routed_lines:?}"
    );
    assert_eq!(fast_lines, routed_lines);
    server.stop().await;
}
