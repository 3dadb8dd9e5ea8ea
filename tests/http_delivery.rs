//! Media delivery semantics over HTTP/1.1 and HTTP/2: ranges, conditional
//! requests, caching headers, content types, CORS and compression.

mod common;

use bytes::Bytes;
use common::{TestServer, error_of, gunzip};
use reqwest::header;
use streamforge_actors::storage::{ObjectKey, Storage};

const PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MAP:URI=\"v1/init.mp4\"\n";

fn segment(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A server whose storage holds a small packaged asset `a1`.
async fn server_with_asset(max_cached: u64) -> (TestServer, Vec<u8>, Vec<u8>) {
    let server = TestServer::start_with(|c| c.http.cache_max_object_bytes = max_cached).await;
    let storage = Storage::local(&server.data.path().join("media")).unwrap();
    let playlist = PLAYLIST.repeat(8).into_bytes();
    let seg = segment(300_000);
    let big = segment(3_000_000);
    for (key, bytes) in [
        ("assets/a1/media/master.m3u8", playlist.clone()),
        ("assets/a1/media/v1/seg-00001.m4s", seg.clone()),
        ("assets/a1/media/v1/big.m4s", big),
        ("assets/a1/original", b"the original upload".to_vec()),
    ] {
        storage
            .put(&ObjectKey::new(key).unwrap(), Bytes::from(bytes))
            .await
            .unwrap();
    }
    (server, playlist, seg)
}

fn clients() -> [(&'static str, reqwest::Client); 2] {
    [
        (
            "h1",
            reqwest::Client::builder().http1_only().build().unwrap(),
        ),
        (
            "h2",
            reqwest::Client::builder()
                .http2_prior_knowledge()
                .build()
                .unwrap(),
        ),
    ]
}

#[tokio::test]
async fn files_carry_type_validators_and_caching_by_kind() {
    let (server, playlist, seg) = server_with_asset(1 << 20).await;
    for (name, http) in clients() {
        let response = http
            .get(server.url("/vod/a1/master.m3u8"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
        let h = response.headers().clone();
        assert_eq!(
            h[header::CONTENT_TYPE],
            "application/vnd.apple.mpegurl",
            "{name}"
        );
        assert_eq!(h[header::CACHE_CONTROL], "public, max-age=1", "{name}");
        assert_eq!(h[header::ACCEPT_RANGES], "bytes");
        assert!(h.contains_key(header::ETAG) && h.contains_key(header::LAST_MODIFIED));
        assert_eq!(response.bytes().await.unwrap(), playlist, "{name}");

        for _ in 0..2 {
            // The second read is served from the in-memory cache; same answer.
            let response = http
                .get(server.url("/vod/a1/v1/seg-00001.m4s"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{name}");
            let h = response.headers().clone();
            assert_eq!(h[header::CONTENT_TYPE], "video/iso.segment");
            assert_eq!(
                h[header::CACHE_CONTROL],
                "public, max-age=31536000, immutable"
            );
            assert_eq!(h[header::CONTENT_LENGTH], seg.len().to_string());
            assert_eq!(response.bytes().await.unwrap(), seg, "{name}");
        }

        let missing = http
            .get(server.url("/vod/a1/v1/seg-99999.m4s"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404, "{name}");
        assert_eq!(error_of(missing).await.0, "not_found");
        // The original upload is not part of the packaged output.
        let original = http
            .get(server.url("/vod/a1/original"))
            .send()
            .await
            .unwrap();
        assert_eq!(original.status(), 404, "{name}");
    }
    server.stop().await;
}

async fn get_range(http: &reqwest::Client, url: &str, range: &str) -> reqwest::Response {
    http.get(url)
        .header(header::RANGE, range)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn ranges_from_memory_and_from_storage() {
    // On local storage both segments are served from mappings of their
    // files (the 3 MB one is over the memory cache's limit, which only
    // remote stores use for segments).
    let (server, _, seg) = server_with_asset(1 << 20).await;
    let big = segment(3_000_000);
    for (name, http) in clients() {
        for (path, body) in [
            ("/vod/a1/v1/seg-00001.m4s", &seg),
            ("/vod/a1/v1/big.m4s", &big),
        ] {
            let url = server.url(path);
            let size = body.len();
            for (range, start, end) in [
                ("bytes=0-99", 0, 100),
                ("bytes=100-", 100, size),
                ("bytes=-10", size - 10, size),
                ("bytes=5-5", 5, 6),
                (
                    &format!("bytes={}-{}", size - 3, size + 1000) as &str,
                    size - 3,
                    size,
                ),
                (&format!("bytes=-{}", size + 5) as &str, 0, size),
            ] {
                let response = get_range(&http, &url, range).await;
                assert_eq!(response.status(), 206, "{name} {path} {range}");
                assert_eq!(
                    response.headers()[header::CONTENT_RANGE],
                    format!("bytes {start}-{}/{size}", end - 1),
                    "{name} {path} {range}"
                );
                assert_eq!(
                    response.bytes().await.unwrap(),
                    &body[start..end],
                    "{name} {path} {range}"
                );
            }
            for range in [
                &format!("bytes={size}-") as &str,
                "bytes=9-3",
                "bytes=abc",
                "bytes=-0",
            ] {
                let response = get_range(&http, &url, range).await;
                assert_eq!(response.status(), 416, "{name} {path} {range}");
                assert_eq!(
                    response.headers()[header::CONTENT_RANGE],
                    format!("bytes */{size}"),
                    "{name} {path} {range}"
                );
                assert_eq!(error_of(response).await.0, "range_not_satisfiable");
            }
            // Several ranges, or another unit: the whole file.
            for range in ["bytes=0-1,5-6", "items=0-1"] {
                let response = get_range(&http, &url, range).await;
                assert_eq!(response.status(), 200, "{name} {path} {range}");
                assert_eq!(response.bytes().await.unwrap().len(), size);
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn head_and_conditional_requests() {
    let (server, _, _) = server_with_asset(1 << 20).await;
    for (name, http) in clients() {
        for path in [
            "/vod/a1/v1/seg-00001.m4s",
            "/vod/a1/v1/big.m4s",
            "/vod/a1/master.m3u8",
        ] {
            let url = server.url(path);
            let full = http.get(&url).send().await.unwrap();
            let etag = full.headers()[header::ETAG].clone();
            let modified = full.headers()[header::LAST_MODIFIED].clone();
            let length = full.headers()[header::CONTENT_LENGTH].clone();

            let head = http.head(&url).send().await.unwrap();
            assert_eq!(head.status(), 200, "{name} {path}");
            assert_eq!(head.headers()[header::ETAG], etag);
            assert_eq!(
                head.headers()[header::CONTENT_LENGTH],
                length,
                "{name} {path}"
            );
            assert!(head.bytes().await.unwrap().is_empty());

            let ranged_head = http
                .head(&url)
                .header(header::RANGE, "bytes=0-9")
                .send()
                .await
                .unwrap();
            assert_eq!(ranged_head.status(), 206);
            assert_eq!(ranged_head.headers()[header::CONTENT_LENGTH], "10");

            for (condition, value) in [
                (header::IF_NONE_MATCH, etag.clone()),
                (
                    header::IF_NONE_MATCH,
                    format!("\"nope\", W/{}", etag.to_str().unwrap())
                        .parse()
                        .unwrap(),
                ),
                (header::IF_MODIFIED_SINCE, modified.clone()),
            ] {
                let response = http
                    .get(&url)
                    .header(condition.clone(), value)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 304, "{name} {path} {condition}");
                assert_eq!(response.headers()[header::ETAG], etag);
                assert!(response.bytes().await.unwrap().is_empty());
            }
            let changed = http
                .get(&url)
                .header(header::IF_NONE_MATCH, "\"something-else\"")
                .send()
                .await
                .unwrap();
            assert_eq!(changed.status(), 200);

            // A stale If-Range turns the range request into a full one.
            let stale = http
                .get(&url)
                .header(header::RANGE, "bytes=0-9")
                .header(header::IF_RANGE, "\"stale\"")
                .send()
                .await
                .unwrap();
            assert_eq!(stale.status(), 200, "{name} {path}");
            let fresh = http
                .get(&url)
                .header(header::RANGE, "bytes=0-9")
                .header(header::IF_RANGE, etag.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(fresh.status(), 206, "{name} {path}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn cors_for_browser_players_and_compressed_playlists() {
    let (server, playlist, _) = server_with_asset(1 << 20).await;
    let http = reqwest::Client::builder().build().unwrap();

    let preflight = http
        .request(
            reqwest::Method::OPTIONS,
            server.url("/vod/a1/v1/seg-00001.m4s"),
        )
        .header(header::ORIGIN, "https://player.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
        .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "range")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "*"
    );
    let allowed = preflight.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allowed.contains("range"), "{allowed}");

    let simple = http
        .get(server.url("/vod/a1/v1/seg-00001.m4s"))
        .header(header::ORIGIN, "https://player.example")
        .send()
        .await
        .unwrap();
    assert_eq!(simple.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let exposed = simple.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        exposed.contains("content-range") && exposed.contains("etag"),
        "{exposed}"
    );

    // reqwest here has no gzip decoder: the raw body must be gzip.
    let gzipped = http
        .get(server.url("/vod/a1/master.m3u8"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(gzipped.headers()[header::VARY], "accept-encoding");
    let gzip_etag = gzipped.headers()[header::ETAG].clone();
    assert!(
        gzip_etag.to_str().unwrap().starts_with("W/\""),
        "{gzip_etag:?}"
    );
    let length: usize = gzipped.headers()[header::CONTENT_LENGTH]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = gzipped.bytes().await.unwrap();
    assert!(body.len() < playlist.len());
    assert_eq!(body.len(), length);
    assert_eq!(gunzip(&body), playlist);

    // The cached compressed copy is served again, byte for byte, and its
    // validator revalidates; a HEAD describes the same variant.
    let again = http
        .get(server.url("/vod/a1/master.m3u8"))
        .header(header::ACCEPT_ENCODING, "br;q=0.5, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(again.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(again.bytes().await.unwrap(), body);
    let head = http
        .head(server.url("/vod/a1/master.m3u8"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()[header::CONTENT_LENGTH], length.to_string());
    let revalidated = http
        .get(server.url("/vod/a1/master.m3u8"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .header(header::IF_NONE_MATCH, gzip_etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    assert_eq!(revalidated.headers()[header::ETAG], gzip_etag);

    // gzip refused with q=0, and ranges, get the identity bytes; brotli
    // alone is still made by the compression layer.
    let refused = http
        .get(server.url("/vod/a1/master.m3u8"))
        .header(header::ACCEPT_ENCODING, "gzip;q=0, identity")
        .send()
        .await
        .unwrap();
    assert!(!refused.headers().contains_key(header::CONTENT_ENCODING));
    let identity_etag = refused.headers()[header::ETAG].clone();
    assert_eq!(refused.headers()[header::VARY], "accept-encoding");
    assert_eq!(refused.bytes().await.unwrap(), playlist);
    let identity_304 = http
        .get(server.url("/vod/a1/master.m3u8"))
        .header(header::IF_NONE_MATCH, identity_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(identity_304.status(), 304);
    assert_eq!(identity_304.headers()[header::VARY], "accept-encoding");
    let ranged = http
        .get(server.url("/vod/a1/master.m3u8"))
        .header(header::ACCEPT_ENCODING, "gzip")
        .header(header::RANGE, "bytes=0-6")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert!(!ranged.headers().contains_key(header::CONTENT_ENCODING));
    assert_eq!(ranged.bytes().await.unwrap(), &playlist[..7]);
    let brotli = http
        .get(server.url("/vod/a1/master.m3u8"))
        .header(header::ACCEPT_ENCODING, "br")
        .send()
        .await
        .unwrap();
    assert_eq!(brotli.headers()[header::CONTENT_ENCODING], "br");

    let media = http
        .get(server.url("/vod/a1/v1/seg-00001.m4s"))
        .header(header::ACCEPT_ENCODING, "gzip, br")
        .send()
        .await
        .unwrap();
    assert!(
        !media.headers().contains_key(header::CONTENT_ENCODING),
        "media is never recompressed"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_rewritten_playlist_is_served_within_its_max_age() {
    let (server, playlist, _) = server_with_asset(1 << 20).await;
    let storage = Storage::local(&server.data.path().join("media")).unwrap();
    let http = reqwest::Client::new();
    let url = server.url("/vod/a1/master.m3u8");
    assert_eq!(
        http.get(&url).send().await.unwrap().bytes().await.unwrap(),
        playlist
    );

    let grown = format!("{}#EXT-X-ENDLIST\n", String::from_utf8(playlist).unwrap());
    storage
        .put(
            &ObjectKey::new("assets/a1/media/master.m3u8").unwrap(),
            Bytes::from(grown.clone()),
        )
        .await
        .unwrap();
    // Cache-Control allows clients one second; the server refreshes sooner.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let response = http.get(&url).send().await.unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_LENGTH],
        grown.len().to_string()
    );
    assert_eq!(response.bytes().await.unwrap(), grown.as_bytes());
    server.stop().await;
}

#[tokio::test]
async fn a_segment_cut_short_underneath_fails_its_own_response_only() {
    let (server, _, seg) = server_with_asset(1 << 20).await;
    let url = server.url("/vod/a1/v1/seg-00001.m4s");
    let other = server.url("/vod/a1/v1/big.m4s");
    for (_, http) in clients() {
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.bytes().await.unwrap(), seg);
    }
    // Another program rewrites the file in place while the server holds
    // its mapping (checked moments ago).
    let path = server
        .data
        .path()
        .join("media/assets/a1/media/v1/seg-00001.m4s");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let (_, h1) = &clients()[0];
    let response = h1.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 503, "the version described is gone");
    assert_eq!(error_of(response).await.0, "storage_unavailable");
    // The server and its other files are untouched; the file is mapped
    // again as it is now.
    for (name, http) in clients() {
        let response = http.get(&other).send().await.unwrap();
        assert_eq!(
            response.bytes().await.unwrap(),
            segment(3_000_000),
            "{name}"
        );
        let response = http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{name}");
        assert_eq!(response.bytes().await.unwrap(), &seg[..1000], "{name}");
    }
    server.stop().await;
}
