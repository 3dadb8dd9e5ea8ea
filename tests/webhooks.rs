//! Webhooks against a real receiver that checks every signature with the
//! `standardwebhooks` Python package (tests/peers/webhook_receiver.py):
//! deliveries in order, retried through failures, kept across a restart,
//! and endpoints disabled when they fail for too long or answer 410.

mod common;
#[path = "support/postgres.rs"]
mod postgres;

use std::time::Duration;

use common::{TestServer, client, error_of, wait_until};
use serde_json::{Value, json};
use streamforge_actors::webhooks::EndpointSpec;

/// A signing secret: `whsec_` and 32 bytes (0, 1, …, 31) in base64.
const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The Python receiver, stopped when dropped.
struct Receiver {
    _process: tokio::process::Child,
    port: u16,
}

impl Receiver {
    async fn start() -> Receiver {
        let (process, port) =
            common::python_peer(&["tests/peers/webhook_receiver.py".as_ref()]).await;
        Receiver {
            _process: process,
            port,
        }
    }

    fn url(&self, endpoint: &str) -> String {
        format!("http://127.0.0.1:{}/hooks/{endpoint}", self.port)
    }

    /// How the receiver answers `endpoint` from now on: `answers` first,
    /// then `always` (204 when `None`).
    async fn plan(&self, endpoint: &str, secret: &str, answers: &[u16], always: Option<u16>) {
        let response = client()
            .post(format!("http://127.0.0.1:{}/plan/{endpoint}", self.port))
            .json(&json!({ "secret": secret, "answers": answers, "always": always }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }

    /// Every delivery received so far, in arrival order.
    async fn received(&self) -> Vec<Value> {
        client()
            .get(format!("http://127.0.0.1:{}/received", self.port))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The deliveries `endpoint` received, waiting until one of type
    /// `kind` was answered `status`.
    async fn wait_for(&self, endpoint: &str, kind: &str, status: u16) -> Vec<Value> {
        let mut seen = Vec::new();
        wait_until(
            &format!("{endpoint} answering {status} to {kind}"),
            async || {
                seen = self
                    .received()
                    .await
                    .into_iter()
                    .filter(|r| r["endpoint"] == endpoint)
                    .collect();
                seen.iter()
                    .any(|r| r["type"] == kind && r["answered"] == status)
            },
        )
        .await;
        seen
    }
}

fn configured(url: String) -> EndpointSpec {
    EndpointSpec {
        url,
        events: vec!["*".into()],
        secret: SECRET.into(),
        description: Some("the test's receiver".into()),
        name: None,
    }
}

async fn get_json(url: String) -> Value {
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn deliveries_are_signed_in_order_retried_and_kept_across_a_restart() {
    let receiver = Receiver::start().await;
    // The first event's first two attempts fail.
    receiver.plan("main", SECRET, &[500, 503], None).await;
    let url = receiver.url("main");
    let adjust = {
        let url = url.clone();
        move |c: &mut streamforge::config::Config| {
            c.webhooks = vec![configured(url)];
            c.webhook_delivery.first_retry = Duration::from_millis(200);
        }
    };
    let server = TestServer::start_with(adjust.clone()).await;
    let clip = common::clip(
        "-f lavfi -i testsrc2=size=320x180:rate=25:duration=2 -c:v libx264 -preset ultrafast -pix_fmt yuv420p",
    )
    .await;
    let asset = common::upload(&server, "hooked.mp4", clip).await;
    common::wait_for_asset(&server.url(""), &asset, &["ready"]).await;
    let seen = receiver.wait_for("main", "asset.ready", 204).await;

    // Every attempt verified by the independent implementation, with a
    // JSON body and a fresh timestamp.
    for record in &seen {
        assert_eq!(record["verified"], true, "{record}");
        assert_eq!(record["content_type"], "application/json");
    }
    // The first event was tried three times under one id, and nothing
    // after it went out before it was delivered.
    assert_eq!(seen[0]["type"], "upload.created");
    let answers: Vec<&Value> = seen[..3].iter().map(|r| &r["answered"]).collect();
    assert_eq!(answers, [500, 503, 204]);
    assert!(seen[..3].iter().all(|r| r["id"] == seen[0]["id"]));
    let delivered: Vec<&str> = seen
        .iter()
        .filter(|r| r["answered"] == 204)
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    let position = |kind: &str| delivered.iter().position(|k| *k == kind);
    let (created, completed, ready) = (
        position("upload.created").unwrap(),
        position("upload.completed").expect("upload.completed"),
        position("asset.ready").unwrap(),
    );
    assert!(created < completed && completed < ready, "{delivered:?}");
    if let Some(preview) = position("asset.preview_ready") {
        assert!(preview < ready, "{delivered:?}");
    }
    let ready_payload = &seen.iter().find(|r| r["type"] == "asset.ready").unwrap()["payload"];
    assert_eq!(ready_payload["data"]["asset_id"], asset.as_str());
    assert!(ready_payload["timestamp"].as_str().unwrap().ends_with('Z'));

    // The API lists the endpoint (from the file: not deletable here) and
    // every attempt of each delivery.
    let list = get_json(server.url("/api/webhooks")).await;
    let endpoint = &list["webhooks"][0];
    assert_eq!(endpoint["url"], url.as_str());
    assert_eq!(endpoint["from_config"], true);
    assert!(endpoint.get("secret").is_none());
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let deliveries = get_json(server.url(&format!("/api/webhooks/{id}/deliveries"))).await;
    let first = deliveries["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "upload.created")
        .unwrap();
    assert_eq!(first["state"], "delivered");
    let statuses: Vec<&Value> = first["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(statuses, [500, 503, 204]);
    let refused = client()
        .delete(server.url(&format!("/api/webhooks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    assert_eq!(error_of(refused).await.0, "defined_in_config");
    // Through the API, an endpoint on a private address is refused (the
    // file's endpoints are trusted).
    let private = client()
        .post(server.url("/api/webhooks"))
        .json(&json!({ "url": receiver.url("other"), "events": ["*"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(private.status(), 400);
    assert_eq!(error_of(private).await.0, "address_not_allowed");

    // The receiver goes down; an event waits through a restart of the
    // server and goes out, under the same id, once both are back.
    receiver.plan("main", SECRET, &[], Some(503)).await;
    let deleted = client()
        .delete(server.url(&format!("/api/assets/{asset}")))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    let before = receiver.wait_for("main", "asset.deleted", 503).await;
    let data = server.stop_keeping_data().await;
    receiver.plan("main", SECRET, &[], None).await;
    let server = TestServer::start_in(data, adjust).await;
    let after = receiver.wait_for("main", "asset.deleted", 204).await;
    let id_of = |records: &[Value]| {
        records
            .iter()
            .find(|r| r["type"] == "asset.deleted")
            .map(|r| r["id"].clone())
            .unwrap()
    };
    assert_eq!(id_of(&before), id_of(&after));
    let deleted = after.iter().find(|r| r["type"] == "asset.deleted").unwrap();
    assert_eq!(deleted["payload"]["data"]["asset_id"], asset.as_str());
    server.stop().await;
}

#[tokio::test]
async fn failing_endpoints_are_disabled_with_an_event_and_enabled_again() {
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(|c| {
        c.webhook_delivery.first_retry = Duration::from_millis(200);
        c.webhook_delivery.give_up_after = Duration::from_secs(1);
        // The receiver is on loopback.
        c.webhook_delivery.allow_private = true;
    })
    .await;
    let http = client();
    let create = async |endpoint: &str, events: Value| -> Value {
        let response = http
            .post(server.url("/api/webhooks"))
            .json(&json!({ "url": receiver.url(endpoint), "events": events }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let created: Value = response.json().await.unwrap();
        assert_eq!(
            location,
            format!("/api/webhooks/{}", created["id"].as_str().unwrap())
        );
        created
    };
    let watcher = create("watcher", json!(["webhook.disabled"])).await;
    let gone = create("gone", json!(["upload.created"])).await;
    let down = create("down", json!(["upload.created"])).await;
    for (name, created, always) in [
        ("watcher", &watcher, None),
        ("gone", &gone, Some(410)),
        ("down", &down, Some(500)),
    ] {
        let secret = created["secret"].as_str().unwrap();
        assert!(secret.starts_with("whsec_"));
        receiver.plan(name, secret, &[], always).await;
    }

    common::tus_create(&server, 100).await;
    // 410 Gone disables at once; 500s for longer than give_up_after
    // (1 s here) disable too: the watcher hears of both.
    let mut disabled = Vec::new();
    wait_until("two webhook.disabled events", async || {
        disabled = receiver
            .received()
            .await
            .into_iter()
            .filter(|r| r["endpoint"] == "watcher" && r["type"] == "webhook.disabled")
            .collect();
        disabled.len() == 2
    })
    .await;
    let reason_for = |id: &Value| {
        disabled
            .iter()
            .find(|r| r["payload"]["data"]["endpoint_id"] == *id)
            .map(|r| r["payload"]["data"]["reason"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert!(reason_for(&gone["id"]).contains("410"));
    assert!(reason_for(&down["id"]).contains("failed for"));

    let down_id = down["id"].as_str().unwrap();
    let state = get_json(server.url(&format!("/api/webhooks/{down_id}"))).await;
    assert!(state["disabled_at_ms"].is_i64());
    let deliveries = get_json(server.url(&format!("/api/webhooks/{down_id}/deliveries"))).await;
    let delivery = &deliveries["deliveries"][0];
    assert_eq!(delivery["state"], "failed");
    let attempts = delivery["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2, "{delivery}");
    assert!(attempts.iter().all(|a| a["status"] == 500));

    // The gone endpoint's delivery waited; enabled again, it goes out.
    let gone_id = gone["id"].as_str().unwrap();
    let first_try = receiver
        .received()
        .await
        .into_iter()
        .find(|r| r["endpoint"] == "gone")
        .unwrap();
    receiver
        .plan("gone", gone["secret"].as_str().unwrap(), &[], None)
        .await;
    let enabled = http
        .post(server.url(&format!("/api/webhooks/{gone_id}/enable")))
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status(), 200);
    let seen = receiver.wait_for("gone", "upload.created", 204).await;
    assert_eq!(seen.last().unwrap()["id"], first_try["id"]);
    assert!(seen.iter().all(|r| r["verified"] == true));

    // Bad requests get a reason; unknown endpoints are 404; deletion works.
    for (body, words) in [
        (
            json!({ "url": receiver.url("x"), "events": ["asset.done"] }),
            "asset.done",
        ),
        (
            json!({ "url": "ftp://example.com/", "events": ["*"] }),
            "http",
        ),
        (
            json!({ "url": receiver.url("x"), "events": ["*"], "secret": "whsec_c2hvcnQ=" }),
            "24 to 64 bytes",
        ),
        (
            json!({ "url": receiver.url("x"), "events": [] }),
            "event types",
        ),
    ] {
        let response = http
            .post(server.url("/api/webhooks"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let (code, message) = error_of(response).await;
        assert_eq!(code, "invalid_webhook");
        assert!(message.contains(words), "{message}");
    }
    let bad_state = http
        .get(server.url(&format!("/api/webhooks/{gone_id}/deliveries?state=lost")))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_state.status(), 400);
    let missing = http
        .get(server.url("/api/webhooks/ep_missing/deliveries"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let removed = http
        .delete(server.url(&format!("/api/webhooks/{down_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 204);
    let after = http
        .get(server.url(&format!("/api/webhooks/{down_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 404);
    let listed = get_json(server.url("/api/webhooks")).await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 2);
    server.stop().await;
}

/// Two nodes on one PostgreSQL database with the same endpoint: each
/// event goes out once, in the order the events happened, whichever node
/// made it and whichever node sends it.
#[tokio::test]
async fn nodes_on_one_database_send_each_event_once_in_order() {
    let receiver = Receiver::start().await;
    receiver.plan("shared", SECRET, &[], None).await;
    let cluster = postgres::Postgres::start();
    let database = cluster.database("streamforge");
    let on = |id: &'static str| {
        let (database, url) = (database.clone(), receiver.url("shared"));
        move |c: &mut streamforge::config::Config| {
            c.database = database;
            c.node.id = id.to_owned();
            c.webhooks = vec![EndpointSpec {
                events: vec!["upload.created".into(), "webhook.disabled".into()],
                ..configured(url)
            }];
            c.webhook_delivery.allow_private = true;
        }
    };
    let a = TestServer::start_with(on("node-a")).await;
    let b = TestServer::start_with(on("node-b")).await;
    // A second endpoint that answers 410 Gone: disabled on PostgreSQL too,
    // with its event to the first.
    let gone = client()
        .post(a.url("/api/webhooks"))
        .json(&json!({ "url": receiver.url("gone"), "events": ["upload.created"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 201);
    let gone: Value = gone.json().await.unwrap();
    receiver
        .plan("gone", gone["secret"].as_str().unwrap(), &[], Some(410))
        .await;
    let mut created = Vec::new();
    for round in 0..6 {
        let node = if round % 2 == 0 { &a } else { &b };
        let location = common::tus_create(node, 1000 + round).await;
        created.push(location.rsplit('/').next().unwrap().to_owned());
    }
    let shared = async || -> Vec<Value> {
        receiver
            .received()
            .await
            .into_iter()
            .filter(|r| r["endpoint"] == "shared")
            .collect()
    };
    wait_until(
        "six upload.created deliveries and a webhook.disabled",
        async || shared().await.len() > created.len(),
    )
    .await;
    // Nothing more comes (no second node sending the same events).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = shared().await;
    assert!(seen.iter().all(|r| r["verified"] == true), "{seen:?}");
    let uploads: Vec<&str> = seen
        .iter()
        .filter(|r| r["type"] == "upload.created")
        .map(|r| r["payload"]["data"]["upload_id"].as_str().unwrap())
        .collect();
    assert_eq!(uploads, created);
    let disabled: Vec<&Value> = seen
        .iter()
        .filter(|r| r["type"] == "webhook.disabled")
        .collect();
    assert_eq!(disabled.len(), 1, "{seen:?}");
    assert_eq!(disabled[0]["payload"]["data"]["endpoint_id"], gone["id"]);
    b.stop().await;
    a.stop().await;
}

/// A live publish reports its start, its end once the reconnect grace is
/// over (not when the encoder merely drops), and its recording.
#[tokio::test]
async fn a_live_publish_reports_its_start_end_and_recording() {
    let receiver = Receiver::start().await;
    receiver.plan("live", SECRET, &[], None).await;
    let url = receiver.url("live");
    let server = TestServer::start_with(move |c| {
        c.live.open_publish = true;
        c.live.record = true;
        c.live.reconnect_grace = Duration::from_secs(1);
        c.webhooks = vec![EndpointSpec {
            events: vec![
                "live.started".into(),
                "live.ended".into(),
                "recording.ready".into(),
            ],
            ..configured(url)
        }];
    })
    .await;
    let mut encoder = common::push(&format!("{}/live/hooked", server.rtmp_url()), 2);
    assert!(encoder.wait().await.unwrap().success());
    let seen = receiver.wait_for("live", "recording.ready", 204).await;
    let seen = if seen.iter().any(|r| r["type"] == "live.ended") {
        seen
    } else {
        receiver.wait_for("live", "live.ended", 204).await
    };
    let kinds: Vec<&str> = seen.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(kinds[0], "live.started", "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "live.started").count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == "live.ended").count(), 1);
    let started = &seen[0]["payload"]["data"];
    assert_eq!(started["stream"], "hooked");
    assert_eq!(started["protocol"], "rtmp");
    let ended = &seen.iter().find(|r| r["type"] == "live.ended").unwrap()["payload"]["data"];
    assert_eq!(ended["reason"], "publisher_left");
    let recording = &seen
        .iter()
        .find(|r| r["type"] == "recording.ready")
        .unwrap()["payload"]["data"];
    let asset = recording["asset_id"].as_str().unwrap();
    let view = common::wait_for_asset(&server.url(""), asset, &["ready"]).await;
    assert_eq!(view["status"], "ready");
    server.stop().await;
}
