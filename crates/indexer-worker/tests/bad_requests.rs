//! Malformed `POST /task` bodies against the real worker binary (real PostgreSQL and
//! Elasticsearch): each is a 4xx `{message}` naming the field (or the body), no task is
//! created and no index appears.

mod common;

use std::time::Instant;

use common::{Fixture, Worker, TOKEN};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Over axum's default 2 MB body limit.
const OVERSIZED: usize = 3 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_task_bodies_are_refused_by_name_and_start_nothing() {
    let began = Instant::now();
    let fixture = Fixture::new("image", 20, 97).await;
    let worker = Worker::start(&fixture.dbs.api_url, &fixture.es_url, &[]).await;
    let http = &fixture.http;
    let es = &fixture.es_url;

    // A serving pair of our own (never the shared `image` alias): an index behind an alias.
    let live_index = format!("{}live", fixture.index);
    let alias = format!("{}alias", fixture.index);
    // No replica: on the one-node local cluster a leftover with one would stay yellow.
    let r = http
        .put(format!("{es}/{live_index}"))
        .json(&json!({"settings": {"number_of_replicas": 0}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r = http
        .post(format!("{es}/_aliases"))
        .json(&json!({"actions": [{"add": {"index": live_index, "alias": alias}}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let valid = json!({"model_name": "image", "table_name": "temp_import_image",
                       "target_index": fixture.index, "start_id": 1, "end_id": 10});
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body.to_string().into_bytes()
    };
    let without = |field: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(field);
        body.to_string().into_bytes()
    };
    let renamed = |from: &str, to: &str| {
        let mut body = valid.clone();
        let value = body.as_object_mut().unwrap().remove(from).unwrap();
        body[to] = value;
        body.to_string().into_bytes()
    };
    let mut non_utf8 = br#"{"model_name": "ima"#.to_vec();
    non_utf8.extend_from_slice(&[0xff, 0xfe, 0x80]);
    non_utf8.extend_from_slice(
        format!(
            r#"ge", "table_name": "temp_import_image", "target_index": "{}", "start_id": 1, "end_id": 10}}"#,
            fixture.index
        )
        .as_bytes(),
    );
    let mut oversized = valid.clone();
    oversized["padding"] = json!("x".repeat(OVERSIZED));

    // (what, body, what the message must name).
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty body", Vec::new(), "body"),
        ("truncated JSON", b"{\"model_name\": \"image\",".to_vec(), "body"),
        ("trailing garbage", [valid.to_string().as_bytes(), b" x"].concat(), "body"),
        ("array for the object", json!([valid]).to_string().into_bytes(), "body"),
        ("string for the object", json!("image").to_string().into_bytes(), "body"),
        ("null for the object", b"null".to_vec(), "body"),
        ("non-UTF-8 bytes", non_utf8, "body"),
        ("oversized body", oversized.to_string().into_bytes(), "body"),
        ("unknown key for model_name", renamed("model_name", "model"), "model_name"),
        ("unknown key for end_id", renamed("end_id", "stop_id"), "end_id"),
        ("missing table_name", without("table_name"), "table_name"),
        ("model_name null", with("model_name", Value::Null), "model_name"),
        ("model_name a number", with("model_name", json!(1)), "model_name"),
        ("model_name empty", with("model_name", json!("")), "model_name"),
        ("model_name unknown", with("model_name", json!("video")), "model_name"),
        ("model_name upper case", with("model_name", json!("Image")), "model_name"),
        ("model_name an object", with("model_name", json!({"image": null})), "model_name"),
        ("table_name null", with("table_name", Value::Null), "table_name"),
        ("table_name empty", with("table_name", json!("")), "table_name"),
        ("table_name an array", with("table_name", json!(["temp_import_image"])), "table_name"),
        ("table_name of the other media", with("table_name", json!("temp_import_audio")), "table_name"),
        ("table_name the live table", with("table_name", json!("image")), "table_name"),
        ("table_name injected", with("table_name", json!("temp_import_image; DROP TABLE image;--")), "table_name"),
        ("start_id a string", with("start_id", json!("1")), "start_id"),
        ("start_id null", with("start_id", Value::Null), "start_id"),
        ("end_id a fraction", with("end_id", json!(10.5)), "end_id"),
        ("end_id huge", with("end_id", json!(9_223_372_036_854_775_808u64)), "end_id"),
        ("end_id 1e30", with("end_id", json!(1e30)), "end_id"),
        ("start_id below i64", b"{\"model_name\":\"image\",\"table_name\":\"temp_import_image\",\"target_index\":\"image-x\",\"start_id\":-9223372036854775809,\"end_id\":1}".to_vec(), "start_id"),
        ("negative end_id below start_id", with("end_id", json!(-5)), "start_id"),
        ("start_id > end_id", with("start_id", json!(11)), "start_id"),
        ("target_index empty", with("target_index", json!("")), "target_index"),
        ("target_index an object", with("target_index", json!({"index": fixture.index})), "target_index"),
        ("target_index an alias", with("target_index", json!(alias)), "target_index"),
        ("target_index a live index", with("target_index", json!(live_index)), "target_index"),
        ("target_index the live alias", with("target_index", json!("image")), "target_index"),
        ("target_index the filtered alias", with("target_index", json!("image-filtered")), "target_index"),
        ("target_index *", with("target_index", json!("*")), "target_index"),
        ("target_index image-*", with("target_index", json!("image-*")), "target_index"),
        ("target_index _all", with("target_index", json!("_all")), "target_index"),
        ("target_index upper case", with("target_index", json!("image-NEW")), "target_index"),
        ("target_index with /", with("target_index", json!("image-a/b")), "target_index"),
        ("target_index ../", with("target_index", json!("../image-x")), "target_index"),
        ("target_index with ,", with("target_index", json!("image-a,image-b")), "target_index"),
        ("target_index of the other media", with("target_index", json!("audio-x")), "target_index"),
        ("target_index missing from the cluster", with("target_index", json!(format!("{}nope", fixture.index))), "target_index"),
    ];

    let (failures, outcomes) = post_each(&fixture, &worker, &cases).await;
    assert!(
        failures.is_empty(),
        "{} of {} bodies not refused as expected:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    let list = worker.tasks().await;
    let documents = fixture.doc_count().await;
    let indices = own_indices(&fixture).await;
    let live_count = testkit::es_count(http, es, &live_index, None).await;
    record(
        &outcomes,
        &[
            ("a task was created", list != json!([])),
            ("documents were written", documents != 0),
            (
                "an index appeared",
                indices != vec![fixture.index.clone(), live_index.clone()],
            ),
            ("the live index was written", live_count != 0),
        ],
        "bad_requests::malformed_task_bodies_are_refused_by_name_and_start_nothing",
    );
    assert_eq!(list, json!([]), "a task was created");
    assert_eq!(documents, 0, "a document was written");
    assert_eq!(
        own_indices(&fixture).await,
        vec![fixture.index.clone(), live_index.clone()],
        "an index appeared"
    );
    for name in ["image-x", "audio-x", "image-new", "image-a"] {
        let r = http.head(format!("{es}/{name}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "index {name} was created");
    }
    assert_eq!(live_count, 0, "the live index was written");

    worker.stop().await;
    let _ = http.delete(format!("{es}/{live_index}")).send().await;
    fixture.cleanup().await;
    eprintln!(
        "{} bad bodies refused in {:?}",
        cases.len(),
        began.elapsed()
    );
}

/// Malformed SQL task bodies (`"kind": "sql"`, parsed strictly): each a 4xx `{message}`
/// naming the field, and no task is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_sql_task_bodies_are_refused_by_name_and_start_nothing() {
    let fixture = Fixture::new("image", 20, 98).await;
    let worker = Worker::start(&fixture.dbs.api_url, &fixture.es_url, &[]).await;
    let valid = json!({"kind": "sql", "job": "reapply", "media_type": "image", "parallelism": 2});
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body.to_string().into_bytes()
    };
    let without = |field: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(field);
        body.to_string().into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown key",
            with("table_name", json!("temp_import_image")),
            "table_name",
        ),
        (
            "reindex key in a SQL body",
            with("start_id", json!(1)),
            "start_id",
        ),
        ("missing job", without("job"), "job"),
        ("missing media_type", without("media_type"), "media_type"),
        ("job unknown", with("job", json!("vacuum_full")), "job"),
        ("job upper case", with("job", json!("REAPPLY")), "job"),
        ("job a number", with("job", json!(2)), "job"),
        ("job null", with("job", Value::Null), "job"),
        (
            "media_type unknown",
            with("media_type", json!("video")),
            "media_type",
        ),
        (
            "media_type upper case",
            with("media_type", json!("Image")),
            "media_type",
        ),
        (
            "media_type injected",
            with("media_type", json!("image; DROP TABLE image")),
            "media_type",
        ),
        (
            "media_type an array",
            with("media_type", json!(["image"])),
            "media_type",
        ),
        (
            "parallelism 0",
            with("parallelism", json!(0)),
            "parallelism",
        ),
        (
            "parallelism 17",
            with("parallelism", json!(17)),
            "parallelism",
        ),
        (
            "parallelism negative",
            with("parallelism", json!(-4)),
            "parallelism",
        ),
        (
            "parallelism a string",
            with("parallelism", json!("4")),
            "parallelism",
        ),
        (
            "parallelism a fraction",
            with("parallelism", json!(1.5)),
            "parallelism",
        ),
        (
            "parallelism huge",
            with("parallelism", json!(u64::MAX)),
            "parallelism",
        ),
        (
            "parallelism for another job",
            {
                let mut body = valid.clone();
                body["job"] = json!("validate_foreign_keys");
                body.to_string().into_bytes()
            },
            "parallelism",
        ),
        ("kind unknown", with("kind", json!("vacuum")), "kind"),
        ("kind upper case", with("kind", json!("SQL")), "kind"),
        ("kind a number", with("kind", json!(1)), "kind"),
        (
            "trailing garbage",
            [valid.to_string().as_bytes(), b" x"].concat(),
            "body",
        ),
    ];
    let (failures, outcomes) = post_each(&fixture, &worker, &cases).await;
    assert!(
        failures.is_empty(),
        "{} of {} bodies not refused as expected:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let list = worker.tasks().await;
    record(
        &outcomes,
        &[("a task was created", list != json!([]))],
        "bad_requests::malformed_sql_task_bodies_are_refused_by_name_and_start_nothing",
    );
    assert_eq!(list, json!([]), "a task was created");
    worker.stop().await;
    fixture.cleanup().await;
}

/// Posts each case and returns what was not refused as expected (a 4xx `{message}` naming
/// the field), and each case's outcome for the reliability table.
async fn post_each(
    fixture: &Fixture,
    worker: &Worker,
    cases: &[(&str, Vec<u8>, &str)],
) -> (Vec<String>, Vec<(String, String)>) {
    let mut failures = Vec::new();
    let mut outcomes = Vec::new();
    for (what, body, field) in cases {
        let (status, text) = if body.len() > OVERSIZED {
            post_while_reading(&worker.base, body).await
        } else {
            let r = worker
                .authed(fixture.http.post(format!("{}/task", worker.base)))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        };
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string));
        let named = message.as_deref().is_some_and(|m| m.contains(field));
        outcomes.push((
            what.to_string(),
            if named {
                format!("{status} {{message}} naming {field}")
            } else {
                format!("{status} without a {{message}} naming {field}")
            },
        ));
        if !((400..500).contains(&status) && named) {
            failures.push(format!(
                "{what}: {status} {text:.300} (expected a 4xx {{message}} naming {field})"
            ));
        }
    }
    (failures, outcomes)
}

fn record(outcomes: &[(String, String)], problems: &[(&str, bool)], test: &str) {
    let lost = testkit::reliability::lost_on_failure(problems);
    for (what, outcome) in outcomes {
        testkit::reliability::Trial {
            kind: "worker request",
            fault: what.clone(),
            outcome: outcome.clone(),
            lost: lost.clone(),
            test: test.to_string(),
        }
        .record();
    }
}

/// Indices whose name starts with the fixture's index name (which is unique to this test).
async fn own_indices(fixture: &Fixture) -> Vec<String> {
    let v: Value = fixture
        .http
        .get(format!(
            "{}/_cat/indices/{}*?format=json&h=index&expand_wildcards=all",
            fixture.es_url, fixture.index
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut names: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["index"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// POSTs a body the worker refuses before reading it all: the answer is read while the body
/// is still being written (a client that first writes everything may see the connection
/// closed under it instead of the 413).
async fn post_while_reading(base: &str, body: &[u8]) -> (u16, String) {
    let addr = base.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /task HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let body = body.to_vec();
    let sending = tokio::spawn(async move {
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(&body).await;
        writer
    });
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let answer = loop {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no content-length in {head:?}"));
            if answer.len() >= end + 4 + length {
                let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
                let text = String::from_utf8_lossy(&answer[end + 4..end + 4 + length]);
                break (status, text.into_owned());
            }
        }
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => panic!(
                "connection ended before a full answer: {:?}",
                String::from_utf8_lossy(&answer)
            ),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    };
    sending.abort();
    answer
}
