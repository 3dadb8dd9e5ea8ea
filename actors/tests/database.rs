//! Every query of the state database, run against both engines: the
//! embedded SQLite file and a real PostgreSQL server (a throwaway cluster
//! this test starts). The same calls must give the same answers.

#[path = "../../tests/support/postgres.rs"]
mod postgres;

use streamforge_actors::assets::{AssetRecord, AssetStatus, RungState, Stage};
use streamforge_actors::db::{Database, Dialect};
use streamforge_actors::transcode::RungSpec;
use streamforge_actors::uploads::{ConcatKind, Pieces, UploadRecord};

fn upload(id: &str, expires_at_ms: i64) -> UploadRecord {
    UploadRecord {
        id: id.to_owned(),
        length: None,
        offset: 0,
        metadata: "filename Y2xpcC5tcDQ=".to_owned(),
        filename: "clip.mp4".to_owned(),
        filetype: "video/mp4".to_owned(),
        concat: None,
        parts: Vec::new(),
        created_at_ms: 1_000,
        expires_at_ms,
        completed_at_ms: None,
        asset_id: None,
        node: Some("node-a".to_owned()),
        pieces: None,
    }
}

fn asset(id: &str, filename: &str, created_at_ms: i64, status: AssetStatus) -> AssetRecord {
    AssetRecord {
        id: id.to_owned(),
        upload_id: None,
        filename: filename.to_owned(),
        filetype: "video/mp4".to_owned(),
        size: 5_000_000_000,
        status,
        error: None,
        created_at_ms,
        probe: None,
        preview: false,
        poster: false,
        stage: None,
        rungs: None,
        node: (status == AssetStatus::Recording).then(|| "node-a".to_owned()),
    }
}

/// The whole query surface, as the server uses it.
async fn exercise(db: &Database) {
    // Runs: a run without a clean stop is reported once.
    let (first, unclean) = db.begin_run("1.0.0").await.unwrap();
    assert!(unclean.is_empty());
    let (second, unclean) = db.begin_run("1.0.1").await.unwrap();
    assert_eq!(unclean.len(), 1);
    assert_eq!(
        (unclean[0].id, unclean[0].version.as_str()),
        (first, "1.0.0")
    );
    db.end_run(second).await.unwrap();
    assert!(db.begin_run("1.0.2").await.unwrap().1.is_empty());
    db.ping().await.unwrap();

    // Uploads: offsets past 4 GiB, a length declared late, completion,
    // expiry and final concatenations waiting for a part.
    db.insert_upload(&upload("u1", 10_000)).await.unwrap();
    db.set_upload_progress("u1", 5_000_000_000, Some(6_000_000_000))
        .await
        .unwrap();
    db.set_upload_progress("u1", 5_500_000_000, None)
        .await
        .unwrap();
    let u1 = db.upload("u1").await.unwrap().unwrap();
    assert_eq!((u1.offset, u1.length), (5_500_000_000, Some(6_000_000_000)));
    assert_eq!(u1.metadata, "filename Y2xpcC5tcDQ=");
    let mut fin = upload("u2", 20_000);
    fin.concat = Some(ConcatKind::Final);
    fin.parts = vec!["p1".to_owned(), "p2".to_owned()];
    db.insert_upload(&fin).await.unwrap();
    assert_eq!(db.unfinished_finals_with("p2").await.unwrap(), ["u2"]);
    assert!(db.unfinished_finals_with("p3").await.unwrap().is_empty());
    assert_eq!(db.expired_uploads(15_000, "node-a").await.unwrap(), ["u1"]);
    assert!(
        db.expired_uploads(15_000, "node-b")
            .await
            .unwrap()
            .is_empty(),
        "node-a's bytes"
    );
    db.complete_upload("u1", Some("a1")).await.unwrap();
    let u1 = db.upload("u1").await.unwrap().unwrap();
    assert!(u1.completed_at_ms.is_some());
    assert_eq!(u1.asset_id.as_deref(), Some("a1"));
    assert!(
        db.expired_uploads(15_000, "node-a")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.upload("u1").await.unwrap().unwrap().node.as_deref(),
        Some("node-a")
    );
    // An upload in the store: a commit takes only from its holder and at
    // the offset it started from, with its pieces; a takeover only from
    // the holder it names.
    let mut stored = upload("u3", 30_000);
    stored.pieces = Some(Pieces::default());
    db.insert_upload(&stored).await.unwrap();
    let pieces = Pieces::parse("0.w1 6291456.w1").unwrap();
    let commit = |holder, from, to| db.commit_upload("u3", holder, from, to, None, Some(&pieces));
    assert!(commit(Some("node-a"), 0, 7_000_000).await.unwrap());
    assert!(
        !commit(Some("node-a"), 0, 8_000_000).await.unwrap(),
        "stale offset"
    );
    assert!(
        !commit(Some("node-b"), 7_000_000, 8_000_000).await.unwrap(),
        "not the holder"
    );
    assert!(
        db.take_upload("u3", Some("node-a"), "node-b")
            .await
            .unwrap()
    );
    assert!(
        !db.take_upload("u3", Some("node-a"), "node-c")
            .await
            .unwrap(),
        "taken already"
    );
    assert!(
        !commit(Some("node-a"), 7_000_000, 8_000_000).await.unwrap(),
        "taken over"
    );
    assert!(commit(Some("node-b"), 7_000_000, 8_000_000).await.unwrap());
    let u3 = db.upload("u3").await.unwrap().unwrap();
    assert_eq!((u3.offset, u3.node.as_deref()), (8_000_000, Some("node-b")));
    assert_eq!(u3.pieces, Some(pieces.clone()));
    // Any node clears an expired upload whose bytes are in the store.
    assert!(
        db.expired_uploads(35_000, "node-c")
            .await
            .unwrap()
            .contains(&"u3".to_owned())
    );
    db.delete_upload("u3").await.unwrap();
    db.set_upload_asset("u2", "a9").await.unwrap();
    assert_eq!(db.upload("u2").await.unwrap().unwrap().parts, ["p1", "p2"]);
    assert!(db.delete_upload("u2").await.unwrap());
    assert!(!db.delete_upload("u2").await.unwrap());
    assert!(db.upload("u2").await.unwrap().is_none());

    // Assets: listing, search (with LIKE's wildcards taken literally),
    // status filter, paging and the processing columns.
    db.insert_asset(&asset(
        "a1",
        "Holiday_50%.mp4",
        3_000,
        AssetStatus::Uploaded,
    ))
    .await
    .unwrap();
    db.insert_asset(&asset("a2", "holidayX50.mov", 2_000, AssetStatus::Ready))
        .await
        .unwrap();
    db.insert_asset(&asset("a3", "talk.mp4", 1_000, AssetStatus::Recording))
        .await
        .unwrap();
    let (all, total) = db.assets(None, None, 2, 0).await.unwrap();
    assert_eq!(total, 3);
    assert_eq!(
        all.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["a1", "a2"]
    );
    let (page, _) = db.assets(None, None, 2, 2).await.unwrap();
    assert_eq!(page[0].id, "a3");
    let (found, total) = db.assets(Some("_50%"), None, 10, 0).await.unwrap();
    assert_eq!((found.len(), total), (1, 1));
    assert_eq!(found[0].id, "a1");
    let (found, _) = db.assets(Some("HOLIDAY"), None, 10, 0).await.unwrap();
    assert_eq!(found.len(), 2, "search ignores case");
    let (ready, total) = db
        .assets(None, Some(AssetStatus::Ready), 10, 0)
        .await
        .unwrap();
    assert_eq!((ready[0].id.as_str(), total), ("a2", 1));
    let a1 = db.asset("a1").await.unwrap().unwrap();
    assert_eq!(a1.size, 5_000_000_000);

    db.set_asset_probe("a1", &serde_json::json!({"duration": 4.5}))
        .await
        .unwrap();
    db.set_asset_stage("a1", Stage::Transcoding).await.unwrap();
    db.set_asset_rung("a1", "360p", RungState::Encoding)
        .await
        .unwrap();
    db.set_asset_rung("a1", "720p", RungState::Previewable)
        .await
        .unwrap();
    db.set_asset_rung("a1", "360p", RungState::Done)
        .await
        .unwrap();
    db.set_asset_preview("a1").await.unwrap();
    db.set_asset_poster("a1").await.unwrap();
    let a1 = db.asset("a1").await.unwrap().unwrap();
    assert_eq!(a1.probe, Some(serde_json::json!({"duration": 4.5})));
    assert_eq!(a1.stage, Some(Stage::Transcoding));
    assert_eq!(
        a1.rungs,
        Some(serde_json::json!({"360p": "done", "720p": "previewable"}))
    );
    assert!(a1.preview && a1.poster);
    assert_eq!(db.unfinished_assets().await.unwrap(), ["a1"]);
    db.set_asset_status("a1", AssetStatus::Failed, Some("rung 720p: gone"))
        .await
        .unwrap();
    let a1 = db.asset("a1").await.unwrap().unwrap();
    assert_eq!(a1.status, AssetStatus::Failed);
    assert_eq!(a1.stage, Some(Stage::Failed));
    assert_eq!(a1.error.as_deref(), Some("rung 720p: gone"));
    assert_eq!(
        db.fail_stale_recordings("node-b").await.unwrap(),
        0,
        "node-a's recording"
    );
    assert_eq!(db.fail_stale_recordings("node-a").await.unwrap(), 1);
    assert_eq!(
        db.asset("a3").await.unwrap().unwrap().status,
        AssetStatus::Failed
    );
    assert!(db.delete_asset("a2").await.unwrap());
    assert!(db.asset("a2").await.unwrap().is_none());

    // Chunk tasks: claimed once each, a failed one queued again until its
    // last attempt, a done one kept when the rung runs again, joined ones
    // queued again, all released by a stopping node.
    let cuts = [(0, Some(12_000)), (12_000, Some(24_000)), (24_000, None)];
    let rung = RungSpec::Video {
        height: 360,
        kbps: 800,
    };
    db.add_chunk_tasks("c1", &rung, &cuts).await.unwrap();
    let first = db.claim_chunk_tasks("node-a", 1).await.unwrap();
    assert_eq!(
        (first[0].chunk, first[0].start_ms, first[0].end_ms),
        (0, 0, Some(12_000))
    );
    let mut rest = db.claim_chunk_tasks("node-b", 5).await.unwrap();
    rest.sort_by_key(|t| t.chunk); // UPDATE … RETURNING has no order
    assert_eq!(rest.iter().map(|t| t.chunk).collect::<Vec<_>>(), [1, 2]);
    assert_eq!((&rest[1].spec, rest[1].end_ms), (&rung, None));
    assert!(db.claim_chunk_tasks("node-c", 5).await.unwrap().is_empty());
    let held: Vec<_> = rest
        .iter()
        .map(|t| (t.asset.clone(), t.rung.clone(), t.chunk))
        .collect();
    assert_eq!(db.renew_chunk_tasks("node-b", &held).await.unwrap(), 2);
    assert_eq!(
        db.renew_chunk_tasks("node-a", &held).await.unwrap(),
        0,
        "not node-a's"
    );
    assert!(
        db.finish_chunk_task(&first[0], "node-a", "checkpoint", "d1")
            .await
            .unwrap()
    );
    assert!(
        !db.finish_chunk_task(&rest[0], "node-a", "x", "d1")
            .await
            .unwrap(),
        "not node-a's"
    );
    for attempt in 1..=3 {
        db.fail_chunk_task(&rest[1], "node-b", "ffmpeg died")
            .await
            .unwrap();
        if attempt < 3 {
            let again = db.claim_chunk_tasks("node-b", 1).await.unwrap();
            assert_eq!(again[0].chunk, 2, "attempt {attempt}");
        }
    }
    db.add_chunk_tasks("c1", &rung, &cuts).await.unwrap();
    let states = db.chunk_tasks_of("c1", "360p").await.unwrap();
    let summary: Vec<_> = states
        .iter()
        .map(|c| (c.chunk, c.state.as_str(), c.done_by.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (0, "done", Some("node-a")),
            (1, "running", None),
            (2, "queued", None)
        ]
    );
    assert_eq!(states[0].result.as_deref(), Some("checkpoint"));
    assert_eq!(db.release_chunk_tasks_of("node-b").await.unwrap(), 1);
    // Another cut (the configuration changed): chunks past it go, chunks
    // cut differently are queued again, their old results dropped.
    let recut = [(0, Some(10_000)), (10_000, None)];
    db.add_chunk_tasks("c1", &rung, &recut).await.unwrap();
    let states = db.chunk_tasks_of("c1", "360p").await.unwrap();
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(
        states
            .iter()
            .all(|c| c.state == "queued" && c.result.is_none()),
        "{states:?}"
    );
    db.joined_chunk_tasks("c1", "360p").await.unwrap();
    assert!(
        db.chunk_tasks_of("c1", "360p")
            .await
            .unwrap()
            .iter()
            .all(|c| c.state == "joined")
    );
    db.delete_chunk_tasks("c1", "360p").await.unwrap();
    assert!(db.chunk_tasks_of("c1", "360p").await.unwrap().is_empty());

    // A span's chunks of the other video rungs go with the first one
    // claimed (one decode feeds them); the thumbnails, other spans and
    // claimed chunks stay.
    let ladder = [
        RungSpec::Video {
            height: 720,
            kbps: 2500,
        },
        RungSpec::Video {
            height: 360,
            kbps: 800,
        },
    ];
    for spec in &ladder {
        db.add_chunk_tasks("c2", spec, &cuts).await.unwrap();
    }
    let thumbnails = RungSpec::Thumbnails {
        tile_width: 160,
        tile_height: 90,
        interval_ms: 2000,
        duration_ms: 30_000,
    };
    db.add_chunk_tasks("c2", &thumbnails, &[(0, None)])
        .await
        .unwrap();
    let first = db.claim_chunk_tasks("node-a", 1).await.unwrap();
    assert_eq!((first[0].rung.as_str(), first[0].chunk), ("720p", 0));
    let siblings = db.claim_chunk_siblings("node-a", &first[0]).await.unwrap();
    assert_eq!(
        siblings
            .iter()
            .map(|t| (t.rung.as_str(), t.chunk))
            .collect::<Vec<_>>(),
        [("360p", 0)]
    );
    assert!(
        db.claim_chunk_siblings("node-b", &first[0])
            .await
            .unwrap()
            .is_empty()
    );
    let last = db.claim_chunk_tasks("node-b", 1).await.unwrap();
    assert_eq!((last[0].rung.as_str(), last[0].chunk), ("720p", 1));
    let siblings = db.claim_chunk_siblings("node-b", &last[0]).await.unwrap();
    assert_eq!(siblings.len(), 1);
    assert_eq!((siblings[0].chunk, siblings[0].end_ms), (1, Some(24_000)));
    // The last span has no end: its siblings match on that too.
    let tail = db.claim_chunk_tasks("node-b", 1).await.unwrap();
    assert_eq!((tail[0].rung.as_str(), tail[0].chunk), ("720p", 2));
    let siblings = db.claim_chunk_siblings("node-b", &tail[0]).await.unwrap();
    assert_eq!((siblings.len(), siblings[0].end_ms), (1, None));
    for spec in &ladder {
        db.delete_chunk_tasks("c2", &spec.name()).await.unwrap();
    }
    db.delete_chunk_tasks("c2", "thumbnails").await.unwrap();

    // The processing queue: a pinned job goes to its node only, a claim
    // is never taken twice, an expired lease is claimed again, a released
    // job is done, and a restarting node's jobs go back to the queue.
    db.enqueue_job("j1", None).await.unwrap();
    db.enqueue_job("j2", Some("node-a")).await.unwrap();
    db.enqueue_job("j1", None).await.unwrap();
    assert_eq!(db.claim_jobs("node-b", 10).await.unwrap(), ["j1"]);
    assert!(db.claim_jobs("node-b", 10).await.unwrap().is_empty());
    assert_eq!(db.claim_jobs("node-a", 10).await.unwrap(), ["j2"]);
    assert_eq!(db.job_owner("j1").await.unwrap().as_deref(), Some("node-b"));
    assert_eq!(db.renew_jobs("node-b").await.unwrap(), 1);
    sqlx::query("UPDATE jobs SET lease_until = 0 WHERE asset = 'j1'")
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(
        db.claim_jobs("node-c", 10).await.unwrap(),
        ["j1"],
        "node-b's lease ran out"
    );
    db.release_job("j1", "node-b", true).await.unwrap();
    assert_eq!(
        db.job_owner("j1").await.unwrap().as_deref(),
        Some("node-c"),
        "not node-b's any more"
    );
    db.release_job("j1", "node-c", true).await.unwrap();
    assert_eq!(db.job_owner("j1").await.unwrap(), None);
    assert!(
        db.claim_jobs("node-c", 10).await.unwrap().is_empty(),
        "done"
    );
    db.recover_jobs("node-a").await.unwrap();
    assert_eq!(
        db.claim_jobs("node-a", 10).await.unwrap(),
        ["j2"],
        "node-a restarted"
    );
    db.release_job("j2", "node-a", false).await.unwrap();
    assert!(
        db.claim_jobs("node-c", 10).await.unwrap().is_empty(),
        "still pinned to node-a"
    );
    assert_eq!(db.claim_jobs("node-a", 10).await.unwrap(), ["j2"]);

    // API tokens and stream keys: only digests are stored.
    let (id, token) = db.create_token("ci").await.unwrap();
    assert!(db.token_is_valid(&token).await.unwrap());
    assert!(!db.token_is_valid("sf_wrong").await.unwrap());
    assert_eq!(db.tokens().await.unwrap()[0].name, "ci");
    assert!(db.revoke_token(&id).await.unwrap());
    assert!(!db.revoke_token(&id).await.unwrap());
    assert!(!db.token_is_valid(&token).await.unwrap());

    let key = db.create_stream_key("cam1").await.unwrap();
    assert_eq!(
        db.stream_for_key(&key).await.unwrap().as_deref(),
        Some("cam1")
    );
    let replaced = db.create_stream_key("cam1").await.unwrap();
    assert!(db.stream_for_key(&key).await.unwrap().is_none());
    assert!(db.stream_for_key(&replaced).await.unwrap().is_some());
    assert!(db.stream_has_key("cam1").await.unwrap());
    assert_eq!(db.stream_keys().await.unwrap().len(), 1);
    assert!(db.revoke_stream_key("cam1").await.unwrap());
    assert!(!db.stream_has_key("cam1").await.unwrap());

    exercise_webhooks(db).await;
}

/// Webhook endpoints and the outbox: events are written with the change
/// they report, for the endpoints subscribed to them.
async fn exercise_webhooks(db: &Database) {
    use streamforge_actors::webhooks::{DeliveryState, EndpointSpec, NewEndpoint};
    let spec = EndpointSpec {
        url: "https://hooks.example.com/in".into(),
        events: vec!["asset.ready".into(), "asset.deleted".into()],
        secret: "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
        description: None,
        name: Some("billing".into()),
    };
    db.sync_config_endpoints(std::slice::from_ref(&spec))
        .await
        .unwrap();
    db.sync_config_endpoints(std::slice::from_ref(&spec))
        .await
        .unwrap();
    let (every, secret) = db
        .create_webhook_endpoint(NewEndpoint {
            url: "http://127.0.0.1:9/all".into(),
            events: vec!["*".into()],
            ..NewEndpoint::default()
        })
        .await
        .unwrap();
    assert!(secret.starts_with("whsec_"));
    let endpoints = db.webhook_endpoints().await.unwrap();
    assert_eq!(endpoints.len(), 2);
    let configured = endpoints.iter().find(|e| e.from_config).unwrap();
    assert_eq!(configured.events, ["asset.ready", "asset.deleted"]);

    // An upload's asset (a recording, with no upload, reports
    // recording.ready instead).
    db.insert_asset(&AssetRecord {
        upload_id: Some("u-w1".into()),
        ..asset("w1", "hooked.mp4", 1, AssetStatus::Processing)
    })
    .await
    .unwrap();
    db.set_asset_status("w1", AssetStatus::Ready, None)
        .await
        .unwrap();
    // The same status again reports nothing.
    db.set_asset_status("w1", AssetStatus::Ready, None)
        .await
        .unwrap();
    db.delete_asset("w1").await.unwrap();
    let kinds = |deliveries: Vec<streamforge_actors::webhooks::Delivery>| -> Vec<String> {
        deliveries.into_iter().map(|d| d.kind).collect()
    };
    assert_eq!(
        kinds(
            db.webhook_deliveries(&configured.id, None, 10)
                .await
                .unwrap()
        ),
        ["asset.deleted", "asset.ready"]
    );
    let all = db.webhook_deliveries(&every.id, None, 10).await.unwrap();
    assert_eq!(kinds(all.clone()), ["asset.deleted", "asset.ready"]);
    assert_eq!(all[0].payload["data"]["asset_id"], "w1");
    assert_eq!(
        all[0].id,
        db.webhook_deliveries(&configured.id, None, 10)
            .await
            .unwrap()[0]
            .id
    );
    assert!(
        db.webhook_deliveries(&every.id, Some(DeliveryState::Delivered), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.webhook_endpoint(&every.id)
            .await
            .unwrap()
            .unwrap()
            .pending,
        2
    );
    db.enable_webhook_endpoint(&every.id).await.unwrap();
    db.delete_webhook_endpoint(&every.id).await.unwrap();
    assert!(db.webhook_endpoint(&every.id).await.unwrap().is_none());
    assert!(db.delete_webhook_endpoint(&configured.id).await.is_err());
    // A named endpoint keeps its id and its waiting deliveries when its
    // URL changes.
    let moved = EndpointSpec {
        url: "https://hooks.example.com/v2/in".into(),
        ..spec.clone()
    };
    db.sync_config_endpoints(std::slice::from_ref(&moved))
        .await
        .unwrap();
    let after = db.webhook_endpoint(&configured.id).await.unwrap().unwrap();
    assert_eq!(after.url, moved.url);
    assert_eq!(after.pending, 2);
    // Gone from the file, gone from the database, with its deliveries.
    db.sync_config_endpoints(&[]).await.unwrap();
    assert!(db.webhook_endpoints().await.unwrap().is_empty());
    assert_eq!(db.prune_webhook_deliveries(i64::MAX).await.unwrap(), 0);
}

#[tokio::test]
async fn every_query_answers_alike_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    let db = Database::open(&url).await.unwrap();
    assert_eq!(db.dialect(), Dialect::Sqlite);
    exercise(&db).await;
    db.close().await;
    // Reopening applies no migration twice.
    Database::open(&url).await.unwrap().close().await;
}

#[tokio::test]
async fn every_query_answers_alike_on_postgresql() {
    let cluster = postgres::Postgres::start();
    let url = cluster.database("streamforge");
    let db = Database::open(&url).await.unwrap();
    assert_eq!(db.dialect(), Dialect::Postgres);
    exercise(&db).await;
    db.close().await;
    Database::open(&url).await.unwrap().close().await;
}
