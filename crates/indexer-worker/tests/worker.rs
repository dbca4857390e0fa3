//! The real worker binary against real PostgreSQL (`TEST_PG_URL`) and Elasticsearch (`ES_URL`).

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{CutProxy, Fixture, Worker, TOKEN};
use serde_json::{json, Value};

const TASK_LIMIT: Duration = Duration::from_secs(300);

/// Brief §4, written out independently of `refresh_core::document` so the test is an oracle.
fn expected_popularity(raw: Option<f64>) -> Option<f64> {
    let v = (raw? * 100.0).clamp(0.0, 100.0);
    (v >= 1.2e-38).then_some(v)
}

fn expected_authority(meta: Option<&Value>, provider: Option<&str>) -> Option<f64> {
    if let Some(v) = meta
        .and_then(|m| m.get("authority_boost"))
        .and_then(Value::as_f64)
    {
        let v = v.clamp(0.0, 100.0);
        return (v >= 1.2e-38).then_some(v);
    }
    match provider? {
        "stocksnap" | "rawpixel" => Some(85.0),
        "thorvaldsensmuseum" | "svgsilh" | "smithsonian" | "rijksmuseum" | "museumsvictoria"
        | "met" | "mccordsmuseum" | "digitaltmuseum" | "clevelandmuseum" | "brooklynmuseum" => {
            Some(90.0)
        }
        "flickr" | "behance" | "thingiverse" | "sketchfab" | "deviantart" => Some(75.0),
        _ => None,
    }
}

fn close(actual: &Value, expected: Option<f64>, what: &str, id: i64) {
    match expected {
        None => assert!(
            actual.is_null(),
            "id {id}: {what} must be null, got {actual}"
        ),
        Some(e) => {
            let a = actual
                .as_f64()
                .unwrap_or_else(|| panic!("id {id}: {what} missing, expected {e}"));
            assert!(
                (a - e).abs() <= 1e-4 * e.abs().max(1.0),
                "id {id}: {what} = {a}, expected {e}"
            );
        }
    }
}

/// Keys of every document (the search API reads them directly): present, `null` when the
/// row has no value.
const COMMON_KEYS: [&str; 18] = [
    "id",
    "created_on",
    "identifier",
    "license",
    "provider",
    "source",
    "category",
    "title",
    "creator",
    "description",
    "mature",
    "tags",
    "url",
    "standardized_popularity",
    "authority_boost",
    "max_boost",
    "min_boost",
    "extension",
];
const IMAGE_KEYS: [&str; 2] = ["aspect_ratio", "size"];
const AUDIO_KEYS: [&str; 2] = ["length", "filetype"];

/// A tag's accuracy in the document: a number, or a decimal numeric string read as its number
/// (as the tag filter reads it); anything else is null.
fn expected_accuracy(tag: &Value) -> Option<f64> {
    match tag.get("accuracy") {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.parse::<f64>().ok().filter(|a| a.is_finite()),
        _ => None,
    }
}

/// Checks one indexed document against its source row, field by field.
fn check_document(media: &str, row: &tokio_postgres::Row, source: &Value) {
    let id: i64 = row.get("id");
    assert_eq!(source["id"].as_i64(), Some(id));
    // Exactly the media's keys: an absent value is `null`, never a missing key.
    let mut keys: Vec<&str> = source
        .as_object()
        .expect("the document is an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let own = if media == "image" {
        IMAGE_KEYS
    } else {
        AUDIO_KEYS
    };
    let mut expected_keys: Vec<&str> = COMMON_KEYS.iter().chain(&own).copied().collect();
    expected_keys.sort_unstable();
    assert_eq!(keys, expected_keys, "id {id}: document keys");

    let text = |col: &str| row.get::<_, Option<String>>(col);
    for field in [
        "identifier",
        "provider",
        "source",
        "category",
        "title",
        "creator",
        "url",
    ] {
        assert_eq!(source[field], json!(text(field)), "id {id}: {field}");
    }
    assert_eq!(
        source["license"].as_str(),
        Some(row.get::<_, String>("license").to_lowercase().as_str()),
        "id {id}: license"
    );
    let created: DateTime<Utc> = row.get("created_on");
    let indexed: DateTime<Utc> = source["created_on"]
        .as_str()
        .expect("created_on")
        .parse()
        .expect("created_on is a date");
    assert_eq!(indexed, created, "id {id}: created_on");

    let meta: Option<Value> = row.get("meta_data");
    let description = meta
        .as_ref()
        .and_then(|m| m.get("description"))
        .and_then(Value::as_str);
    let expected_description: Option<String> = description.map(|d| d.chars().take(2000).collect());
    assert_eq!(
        source["description"],
        json!(expected_description),
        "id {id}: description"
    );
    if description.is_some_and(|d| d.chars().count() > 2000) {
        assert_eq!(
            source["description"].as_str().unwrap().chars().count(),
            2000,
            "id {id}: truncated description"
        );
    }

    let meta_mature = meta
        .as_ref()
        .and_then(|m| m.get("mature"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let listed: bool = row.get("mature_listed");
    assert_eq!(
        source["mature"].as_bool(),
        Some(meta_mature || listed),
        "id {id}: mature"
    );

    let popularity = expected_popularity(row.get("standardized_popularity"));
    let provider = text("provider");
    let authority = expected_authority(meta.as_ref(), provider.as_deref());
    close(
        &source["standardized_popularity"],
        popularity,
        "standardized_popularity",
        id,
    );
    close(&source["authority_boost"], authority, "authority_boost", id);
    let (p, a) = (popularity.unwrap_or(1.0), authority.unwrap_or(1.0));
    close(&source["max_boost"], Some(p.max(a)), "max_boost", id);
    close(&source["min_boost"], Some(p.min(a)), "min_boost", id);

    let tags: Option<Value> = row.get("tags");
    let expected_tags: Vec<&Value> = match &tags {
        Some(Value::Array(items)) => items
            .iter()
            .filter(|t| t.get("name").is_some_and(Value::is_string))
            .collect(),
        _ => vec![],
    };
    let expected_names: Vec<&str> = expected_tags
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let indexed_tags = source["tags"].as_array().expect("tags is an array");
    let names: Vec<&str> = indexed_tags
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, expected_names, "id {id}: tag names");
    for (tag, expected) in indexed_tags.iter().zip(&expected_tags) {
        let mut tag_keys: Vec<&str> = tag
            .as_object()
            .expect("a tag is an object")
            .keys()
            .map(String::as_str)
            .collect();
        tag_keys.sort_unstable();
        assert_eq!(tag_keys, ["accuracy", "name"], "id {id}: tag keys {tag}");
        close(
            &tag["accuracy"],
            expected_accuracy(expected),
            &format!("accuracy of tag {expected}"),
            id,
        );
    }

    if media == "image" {
        let (w, h): (Option<i32>, Option<i32>) = (row.get("width"), row.get("height"));
        let (ratio, size) = match (w, h) {
            (Some(w), Some(h)) if w > 0 && h > 0 => {
                let ratio = if h > w {
                    "tall"
                } else if w > h {
                    "wide"
                } else {
                    "square"
                };
                let px = i64::from(w) * i64::from(h);
                (
                    Some(ratio),
                    Some(if px < 640 * 480 {
                        "small"
                    } else if px < 1600 * 900 {
                        "medium"
                    } else {
                        "large"
                    }),
                )
            }
            _ => (None, None),
        };
        assert_eq!(
            source["aspect_ratio"],
            json!(ratio),
            "id {id}: aspect_ratio"
        );
        assert_eq!(source["size"], json!(size), "id {id}: size");
        // "from the URL's last dot segment when it has no /"
        let url = text("url").unwrap_or_default();
        let ext = url
            .rsplit_once('.')
            .map(|(_, e)| e)
            .filter(|e| !e.contains('/') && !e.is_empty());
        assert_eq!(
            source["extension"],
            json!(ext.map(str::to_lowercase)),
            "id {id}: extension of {url}"
        );
    } else {
        let duration: Option<i32> = row.get("duration");
        let length = duration.filter(|d| *d > 0).map(|d| match d {
            d if d < 30_000 => "shortest",
            d if d < 120_000 => "short",
            d if d < 600_000 => "medium",
            _ => "long",
        });
        assert_eq!(source["length"], json!(length), "id {id}: length");
        let filetype = text("filetype");
        assert_eq!(source["filetype"], json!(filetype), "id {id}: filetype");
        // "extension (from alt_files filetypes, else filetype)"
        let alt: Option<Value> = row.get("alt_files");
        let alt_types: Vec<String> = match &alt {
            Some(Value::Array(files)) => files
                .iter()
                .filter_map(|f| f["filetype"].as_str())
                .map(str::to_lowercase)
                .collect(),
            _ => vec![],
        };
        let extensions: Vec<String> = match &source["extension"] {
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str())
                .map(str::to_lowercase)
                .collect(),
            Value::String(s) => vec![s.to_lowercase()],
            _ => vec![],
        };
        let mut distinct_alt_types: Vec<String> = Vec::new();
        for t in alt_types.into_iter().filter(|t| !t.is_empty()) {
            if !distinct_alt_types.contains(&t) {
                distinct_alt_types.push(t);
            }
        }
        if distinct_alt_types.is_empty() {
            let expected: Vec<String> = filetype.iter().map(|f| f.to_lowercase()).collect();
            assert_eq!(extensions, expected, "id {id}: extension from filetype");
            if expected.is_empty() {
                assert!(
                    source["extension"].is_null(),
                    "id {id}: no extension is null"
                );
            }
        } else {
            assert_eq!(
                extensions, distinct_alt_types,
                "id {id}: extension from alt_files"
            );
        }
    }
}

async fn source_rows(fixture: &Fixture, ids: &[i64]) -> Vec<tokio_postgres::Row> {
    let media = fixture.media;
    let media_cols = if media == "image" {
        "t.width, t.height"
    } else {
        "t.duration, t.alt_files"
    };
    fixture
        .api()
        .query(
            &format!(
                "SELECT t.id::bigint AS id, t.identifier::text AS identifier, t.license::text AS license, \
                 t.provider::text AS provider, t.source::text AS source, t.category::text AS category, t.title, \
                 t.creator, t.url, t.created_on, t.meta_data, t.tags, t.standardized_popularity, \
                 t.filetype::text AS filetype, {media_cols}, \
                 EXISTS (SELECT 1 FROM api_mature{media} m WHERE m.identifier = t.identifier) AS mature_listed \
                 FROM {} t WHERE t.id = ANY($1::bigint[]) ORDER BY t.id",
                fixture.temp_table()
            ),
            &[&ids],
        )
        .await
        .unwrap()
}

async fn index_and_check(media: &'static str, rows: i64) {
    let fixture = Fixture::new(media, rows, 41).await;
    let (min, max) = fixture.id_bounds().await;
    let eligible = fixture.eligible_ids(min, max).await;
    assert!(
        eligible.len() < rows as usize,
        "the generator must produce rows to skip"
    );

    let worker = Worker::start(
        &fixture.dbs.api_url,
        &fixture.es_url,
        &["--bulk-max-docs", "700"],
    )
    .await;
    let task = worker.start_range(&fixture, min, max).await;
    let status = worker.wait(&task, TASK_LIMIT).await;
    assert_eq!(status["error"], Value::Null, "{status}");
    assert_eq!(status["progress"], 100.0);
    assert_eq!(status["rows_total"], rows);
    assert_eq!(status["rows_processed"], rows);
    assert_eq!(status["indexed"], eligible.len() as u64);
    assert_eq!(status["skipped"], rows as u64 - eligible.len() as u64);
    assert_eq!(status["failed"], 0);
    assert_eq!(status["model"], media);
    assert!(status["finish_time"].is_string());

    assert_eq!(fixture.doc_count().await, eligible.len() as u64);
    assert_eq!(fixture.all_ids().await, eligible);

    // The first 400 eligible rows cover every edge-case cycle of the generator.
    let sample: Vec<i64> = eligible.iter().copied().take(400).collect();
    let docs = fixture.get_docs(&sample).await;
    let rows = source_rows(&fixture, &sample).await;
    assert_eq!(rows.len(), sample.len());
    for (row, doc) in rows.iter().zip(&docs) {
        assert_eq!(doc["found"], true);
        check_document(media, row, &doc["_source"]);
    }
    worker.stop().await;
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_an_image_range_field_by_field() {
    index_and_check("image", 12_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_an_audio_range_field_by_field() {
    index_and_check("audio", 3_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_adjacent_ranges_cover_the_table_exactly() {
    let fixture = Fixture::new("image", 9_000, 43).await;
    let (min, max) = fixture.id_bounds().await;
    let mid = min + (max - min) / 2;
    let a = Worker::start(
        &fixture.dbs.api_url,
        &fixture.es_url,
        &["--bulk-max-docs", "500"],
    )
    .await;
    let b = Worker::start(
        &fixture.dbs.api_url,
        &fixture.es_url,
        &["--bulk-max-docs", "500"],
    )
    .await;
    let (ta, tb) = (
        a.start_range(&fixture, min, mid).await,
        b.start_range(&fixture, mid + 1, max).await,
    );
    let (sa, sb) = (a.wait(&ta, TASK_LIMIT).await, b.wait(&tb, TASK_LIMIT).await);
    for s in [&sa, &sb] {
        assert_eq!(s["error"], Value::Null, "{s}");
    }
    let eligible = fixture.eligible_ids(min, max).await;
    // No duplicate: each eligible row was indexed by exactly one worker.
    assert_eq!(
        sa["indexed"].as_u64().unwrap() + sb["indexed"].as_u64().unwrap(),
        eligible.len() as u64
    );
    assert_eq!(
        sa["indexed"],
        fixture.eligible_ids(min, mid).await.len() as u64
    );
    // No missing id, nothing extra.
    assert_eq!(fixture.all_ids().await, eligible);
    a.stop().await;
    b.stop().await;
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_lost_mid_task_fails_with_counts_and_a_rerun_completes() {
    let fixture = Fixture::new("image", 12_000, 47).await;
    let (min, max) = fixture.id_bounds().await;
    let eligible = fixture.eligible_ids(min, max).await;
    let mut proxy = CutProxy::start(&fixture.es_url).await;
    let worker = Worker::start(
        &fixture.dbs.api_url,
        &proxy.url(),
        &[
            "--bulk-max-docs",
            "200",
            "--bulk-in-flight",
            "2",
            "--bulk-max-attempts",
            "3",
            "--bulk-retry-base-ms",
            "50",
            "--bulk-retry-max-ms",
            "200",
        ],
    )
    .await;
    let task = worker.start_range(&fixture, min, max).await;
    // Cut once about a quarter of the documents have gone through.
    let deadline = std::time::Instant::now() + TASK_LIMIT;
    while proxy.forwarded.load(std::sync::atomic::Ordering::Relaxed) < 3_000_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "worker never sent 3 MB"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.cut();
    let failed = worker.wait(&task, TASK_LIMIT).await;
    let error = failed["error"]
        .as_str()
        .unwrap_or_else(|| panic!("task must end in error: {failed}"));
    assert!(error.contains("indexed"), "error names the counts: {error}");
    let indexed = failed["indexed"].as_u64().unwrap();
    assert!(indexed > 0 && indexed < eligible.len() as u64, "{failed}");
    assert!(
        failed["failed"].as_u64().unwrap() > 0,
        "documents in flight are counted failed: {failed}"
    );
    assert!(failed["progress"].as_f64().unwrap() < 100.0);
    assert!(!failed["first_errors"].as_array().unwrap().is_empty());

    // Elasticsearch back: the same range again completes, and _id = id makes it idempotent.
    proxy.open().await;
    let rerun = worker.start_range(&fixture, min, max).await;
    assert_ne!(rerun, task);
    let done = worker.wait(&rerun, TASK_LIMIT).await;
    assert_eq!(done["error"], Value::Null, "{done}");
    assert_eq!(done["indexed"], eligible.len() as u64);
    assert_eq!(fixture.doc_count().await, eligible.len() as u64);
    assert_eq!(fixture.all_ids().await, eligible);
    // Both tasks are listed.
    let list = worker.tasks().await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    worker.stop().await;
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refuses_bad_requests_and_missing_tokens() {
    let fixture = Fixture::new("image", 50, 53).await;
    let worker = Worker::start(&fixture.dbs.api_url, &fixture.es_url, &[]).await;
    let url = |p: &str| format!("{}{p}", worker.base);
    let http = &worker.http;

    let health = http.get(url("/healthcheck")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let valid = json!({"model_name": "image", "table_name": "temp_import_image", "target_index": fixture.index, "start_id": 1, "end_id": 10});
    for (name, request) in [
        ("no token GET /task", http.get(url("/task"))),
        ("no token GET /task/x", http.get(url("/task/abc"))),
        ("no token POST", http.post(url("/task")).json(&valid)),
        ("wrong token", http.get(url("/task")).bearer_auth("wrong")),
        (
            "token prefix",
            http.get(url("/task")).bearer_auth(&TOKEN[..5]),
        ),
        (
            "basic scheme",
            http.get(url("/task"))
                .header("authorization", format!("Basic {TOKEN}")),
        ),
    ] {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 401, "{name}");
        let body: Value = r.json().await.unwrap();
        assert!(body["message"].is_string(), "{name}");
    }

    let bad_requests: Vec<(&str, String)> = vec![
        ("malformed JSON", "{\"model_name\": \"image\",".to_string()),
        ("missing field", json!({"model_name": "image", "table_name": "temp_import_image", "target_index": fixture.index, "start_id": 1}).to_string()),
        ("start after end", json!({"model_name": "image", "table_name": "temp_import_image", "target_index": fixture.index, "start_id": 11, "end_id": 10}).to_string()),
        ("live table", json!({"model_name": "image", "table_name": "image", "target_index": fixture.index, "start_id": 1, "end_id": 10}).to_string()),
        ("injected table", json!({"model_name": "image", "table_name": "temp_import_image; DROP TABLE image", "target_index": fixture.index, "start_id": 1, "end_id": 10}).to_string()),
        ("other media's table", json!({"model_name": "image", "table_name": "temp_import_audio", "target_index": fixture.index, "start_id": 1, "end_id": 10}).to_string()),
        ("uppercase index", json!({"model_name": "image", "table_name": "temp_import_image", "target_index": "image-UPPER", "start_id": 1, "end_id": 10}).to_string()),
        ("index with comma", json!({"model_name": "image", "table_name": "temp_import_image", "target_index": "image-a,b", "start_id": 1, "end_id": 10}).to_string()),
        ("index starting with _", json!({"model_name": "image", "table_name": "temp_import_image", "target_index": "_all", "start_id": 1, "end_id": 10}).to_string()),
        ("missing index", json!({"model_name": "image", "table_name": "temp_import_image", "target_index": "image-does-not-exist-x", "start_id": 1, "end_id": 10}).to_string()),
        ("filtered index", json!({"model_name": "image", "table_name": "temp_import_image", "target_index": format!("{}-filtered", fixture.index), "start_id": 1, "end_id": 10}).to_string()),
        ("live alias", json!({"model_name": "image", "table_name": "temp_import_image", "target_index": "image", "start_id": 1, "end_id": 10}).to_string()),
        ("filtered alias", json!({"model_name": "image", "table_name": "temp_import_image", "target_index": "image-filtered", "start_id": 1, "end_id": 10}).to_string()),
    ];
    for (name, body) in bad_requests {
        let r = worker
            .authed(http.post(url("/task")))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{name}");
        let body: Value = r.json().await.unwrap();
        assert!(!body["message"].as_str().unwrap().is_empty(), "{name}");
    }
    // Nothing was started.
    let list: Value = worker
        .authed(http.get(url("/task")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list, json!([]));
    assert_eq!(fixture.doc_count().await, 0);

    let r = worker
        .authed(http.get(url("/task/0123456789abcdef")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("0123456789abcdef"));

    // A valid request answers in the callers' shape.
    let (status, started) = worker.post_task(&valid).await;
    assert_eq!(status, 202);
    let task_id = started["task_id"].as_str().unwrap();
    assert_eq!(
        started["status_check"].as_str().unwrap(),
        format!("{}/task/{task_id}", worker.base)
    );
    assert!(started["message"].is_string());
    let done = worker.wait(task_id, TASK_LIMIT).await;
    assert_eq!(done["error"], Value::Null, "{done}");
    worker.stop().await;
    fixture.cleanup().await;
}

/// With a temp table present, a worker must never write unfiltered documents into a serving
/// index: an alias, or an index an alias points at, is refused (400, naming target_index).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_and_aliased_indices_are_never_targets() {
    let fixture = Fixture::new("image", 50, 71).await;
    let worker = Worker::start(&fixture.dbs.api_url, &fixture.es_url, &[]).await;
    let http = &fixture.http;
    // A unique alias (never the shared `image` alias): `<index>x` is a valid new-index name.
    let alias = format!("{}x", fixture.index);
    let aliases =
        |action: &str| json!({"actions": [{(action): {"index": fixture.index, "alias": alias}}]});
    let r = http
        .post(format!("{}/_aliases", fixture.es_url))
        .json(&aliases("add"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let (min, max) = fixture.id_bounds().await;
    let task = |index: &str| {
        json!({"model_name": "image", "table_name": "temp_import_image",
               "target_index": index, "start_id": min, "end_id": max})
    };

    let (status, body) = worker.post_task(&task(&alias)).await;
    assert_eq!(status, 400, "an alias: {body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("target_index") && message.contains("is an alias"),
        "{message}"
    );
    let (status, body) = worker.post_task(&task(&fixture.index)).await;
    assert_eq!(status, 400, "an aliased index: {body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("target_index") && message.contains(&format!("behind alias {alias}")),
        "{message}"
    );
    let list = worker.tasks().await;
    assert_eq!(list, json!([]), "nothing was started");
    assert_eq!(fixture.doc_count().await, 0);

    // Unaliased again, the same index is a valid target.
    let r = http
        .post(format!("{}/_aliases", fixture.es_url))
        .json(&aliases("remove"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let task_id = worker.start_range(&fixture, min, max).await;
    let done = worker.wait(&task_id, TASK_LIMIT).await;
    assert_eq!(done["error"], Value::Null, "{done}");
    worker.stop().await;
    fixture.cleanup().await;
}

/// A database failure names its reason (here: the temp table is gone), not just "db error".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_temp_table_fails_the_task_with_the_servers_reason() {
    let fixture = Fixture::new("image", 20, 73).await;
    let (min, max) = fixture.id_bounds().await;
    fixture
        .api()
        .batch_execute("DROP TABLE temp_import_image")
        .await
        .unwrap();
    let worker = Worker::start(&fixture.dbs.api_url, &fixture.es_url, &[]).await;
    let task = worker.start_range(&fixture, min, max).await;
    let failed = worker.wait(&task, TASK_LIMIT).await;
    let error = failed["error"]
        .as_str()
        .unwrap_or_else(|| panic!("the task must fail: {failed}"));
    assert!(
        error.contains("PostgreSQL error 42P01")
            && error.contains("relation \"temp_import_image\" does not exist"),
        "the error must carry the server's reason: {error}"
    );
    assert!(!error.contains("db error"), "{error}");
    assert_eq!(failed["indexed"], 0, "{failed}");
    worker.stop().await;
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_running_task_and_records_it() {
    let fixture = Fixture::new("image", 10_000, 59).await;
    let (min, max) = fixture.id_bounds().await;
    // A slow, single-lane worker so the task is surely running when the signal arrives.
    let mut worker = Worker::start(
        &fixture.dbs.api_url,
        &fixture.es_url,
        &[
            "--bulk-max-docs",
            "50",
            "--bulk-in-flight",
            "1",
            "--page-rows",
            "100",
        ],
    )
    .await;
    let task = worker.start_range(&fixture, min, max).await;
    // Bounded: a task that never indexes (or ends first) fails here, not by hanging the suite.
    let deadline = std::time::Instant::now() + TASK_LIMIT;
    loop {
        let s = worker.status(&task).await;
        if s["indexed"].as_u64().unwrap() > 0 {
            assert_eq!(
                s["active"], true,
                "the task must still be running when the signal is sent: {s}"
            );
            break;
        }
        assert_eq!(
            s["active"], true,
            "the task ended before indexing anything: {s}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no document indexed within {TASK_LIMIT:?}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.signal("TERM").await;
    assert_eq!(worker.exited(Duration::from_secs(60)).await, Some(0));
    let logs = worker.logs.lock().await.join("\n");
    assert!(
        logs.contains("worker shut down before the range was finished"),
        "shutdown recorded in logs:\n{logs}"
    );
    assert!(logs.contains("\"task failed\""));
    let in_index = fixture.doc_count().await;
    assert!(in_index > 0 && in_index < fixture.eligible_ids(min, max).await.len() as u64);
    fixture.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_worker_stops_by_itself() {
    let fixture = Fixture::new("image", 10, 61).await;
    let mut worker = Worker::start(
        &fixture.dbs.api_url,
        &fixture.es_url,
        &["--idle-shutdown-secs", "2"],
    )
    .await;
    assert_eq!(worker.exited(Duration::from_secs(30)).await, Some(0));
    let logs = worker.logs.lock().await.join("\n");
    assert!(logs.contains("no task for the idle limit"), "{logs}");
    fixture.cleanup().await;
}

/// The launch template's user data, run the way the LocalStack EC2 emulation runs it
/// (`INSTANCE_IP` set, `WORKER_BINARY` pointing at this build): the worker answers on
/// that address and port, and its idle limit ends the "instance".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_data_starts_the_worker_on_the_instance_ip() {
    let fixture = Fixture::new("image", 10, 67).await;
    let port = common::free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/user-data.sh");
    let mut child = tokio::process::Command::new("bash")
        .arg(script)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("INSTANCE_IP", "127.0.0.1")
        .env("WORKER_PORT", port.to_string())
        .env("WORKER_BINARY", env!("CARGO_BIN_EXE_indexer-worker"))
        .env("IDLE_SHUTDOWN_SECS", "3")
        .env("API_DB_URL", &fixture.dbs.api_url)
        .env("ES_URL", &fixture.es_url)
        .env("WORKER_TOKEN", TOKEN)
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/healthcheck"))
            .send()
            .await
        {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "worker from user data never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = http
        .get(format!("http://127.0.0.1:{port}/task"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("idle exit")
        .unwrap();
    assert!(status.success());
    fixture.cleanup().await;
}

/// Dual write: one task writes the main index and the filtered one, leaving out what the
/// filtered `_reindex`'s own query calls sensitive — checked against Elasticsearch on both
/// indices, over tags, titles and descriptions of the generated rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_write_task_leaves_out_of_the_filtered_index_what_elasticsearch_calls_sensitive() {
    let fixture = Fixture::new("image", 6_000, 61).await;
    let filtered = format!("{}-filtered", fixture.index);
    let es = refresh_core::es::SearchClient::new(&fixture.es_url).unwrap();
    refresh_core::es::create_index(&es, refresh_core::media::MediaType::Image, &filtered, 1)
        .await
        .unwrap();
    // Tag names (one in another case), a title's number and a word of long descriptions.
    let terms: Vec<String> = ["dog", "River", "sunset", "77", "long"]
        .map(String::from)
        .to_vec();
    let list = std::env::temp_dir().join(format!("{}.txt", testkit::unique_name("terms")));
    std::fs::write(&list, terms.join("\n")).unwrap();
    let list_arg = list.to_string_lossy().into_owned();
    let (min, max) = fixture.id_bounds().await;
    let body = json!({"model_name": "image", "table_name": fixture.temp_table(),
        "target_index": fixture.index, "filtered_index": filtered, "start_id": min, "end_id": max});

    // Without a list the worker cannot tell what to leave out: refused by name.
    let listless = Worker::start(&fixture.dbs.api_url, &fixture.es_url, &[]).await;
    let (status, answer) = listless.post_task(&body).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("SENSITIVE_TERMS_URL")),
        "{answer}"
    );
    listless.stop().await;

    let worker = Worker::start(
        &fixture.dbs.api_url,
        &fixture.es_url,
        &["--sensitive-terms-url", &list_arg, "--bulk-max-docs", "700"],
    )
    .await;
    // Only the target's own filtered index.
    let mut other = body.clone();
    other["filtered_index"] = json!(format!("{}-x-filtered", fixture.index));
    let (status, answer) = worker.post_task(&other).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("filtered_index ")),
        "{answer}"
    );

    let (status, answer) = worker.post_task(&body).await;
    assert_eq!(status, 202, "{answer}");
    let done = worker
        .wait(answer["task_id"].as_str().unwrap(), TASK_LIMIT)
        .await;
    assert_eq!(done["error"], Value::Null, "{done}");
    let count = |key: &str| {
        done[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {done}"))
    };
    let (indexed, filtered_indexed, sensitive) = (
        count("indexed"),
        count("filtered_indexed"),
        count("sensitive"),
    );
    assert_eq!(done["filtered_index"], json!(filtered));
    assert_eq!(count("filtered_failed"), 0, "{done}");
    assert_eq!(filtered_indexed + sensitive, indexed, "{done}");
    assert!(
        sensitive > 100 && filtered_indexed > 100,
        "the list must split the rows: {done}"
    );
    assert_eq!(indexed, fixture.eligible_ids(min, max).await.len() as u64);

    // Elasticsearch's own verdict, with the filtered _reindex's query.
    let sensitive_query = refresh_core::es::sensitive_documents_query(&terms).unwrap();
    let es_count = |index: String, query: Value| {
        let (http, es_url) = (fixture.http.clone(), fixture.es_url.clone());
        async move { testkit::es_count(&http, &es_url, &index, Some(&query)).await }
    };
    let all = json!({"match_all": {}});
    assert_eq!(es_count(fixture.index.clone(), all.clone()).await, indexed);
    assert_eq!(
        es_count(fixture.index.clone(), sensitive_query.clone()).await,
        sensitive,
        "the matcher and Elasticsearch disagree on which documents are sensitive"
    );
    assert_eq!(es_count(filtered.clone(), all).await, filtered_indexed);
    assert_eq!(es_count(filtered.clone(), sensitive_query).await, 0);
    let verdict = refresh_core::es::verify_filtered(
        &es,
        &fixture.index,
        &filtered,
        &terms,
        &refresh_core::es::VerifyOptions::default(),
    )
    .await
    .unwrap();
    assert!(
        matches!(
            verdict,
            refresh_core::es::FilteredVerification::Verified { .. }
        ),
        "{verdict:?}"
    );

    worker.stop().await;
    let _ = fixture
        .http
        .delete(format!("{}/{filtered}", fixture.es_url))
        .send()
        .await;
    let _ = std::fs::remove_file(&list);
    fixture.cleanup().await;
}
