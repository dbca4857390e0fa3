//! One run of each method over the same rows, into a fresh index the caller made: the worker
//! (one or more processes, one task each), Elasticsearch's ceiling (pre-serialised NDJSON),
//! the replaced Python worker, and PostgreSQL's raw `COPY … TO STDOUT`.

use crate::measure::{cpu_seconds, peak_rss_mb, wait_with_usage, Sampler};
use futures::StreamExt;
use refresh_core::document::{select_sql, to_document, write_bulk_action, SourceRow};
use refresh_core::media::MediaType;
use refresh_core::ranges::IdRange;
use refresh_core::worker_api::TaskRequest;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token";

/// A dual-write task: the filtered index it also writes (created by the caller) and the
/// sensitive-terms file the worker reads (`SENSITIVE_TERMS_URL`).
pub struct DualWrite<'a> {
    pub filtered_index: &'a str,
    pub terms_file: &'a Path,
}

struct Worker {
    child: tokio::process::Child,
    pid: u32,
    base: String,
}

async fn start_worker(db_url: &str, es: &str, terms_file: Option<&Path>) -> Worker {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_indexer-worker"));
    command
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env("API_DB_URL", db_url)
        .env("ES_URL", es)
        .env("WORKER_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .env_remove("SENSITIVE_TERMS_URL")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    if let Some(path) = terms_file {
        command.env("SENSITIVE_TERMS_URL", path);
    }
    let child = command.spawn().unwrap();
    let pid = child.id().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    while http
        .get(format!("{base}/healthcheck"))
        .send()
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Worker { child, pid, base }
}

/// The release worker binary, one process per range started at once, each given one task
/// over its range (with `dual`, a dual-write task). docs/s from the first POST to the last
/// task's end; client CPU = the processes' utime + stime over that time; peak RSS = each
/// process's `VmHWM`. Documents are the main index's: a dual-write task's source documents,
/// each counted once.
pub async fn workers(
    http: &reqwest::Client,
    db_url: &str,
    es: &str,
    index: &str,
    ranges: &[IdRange],
    dual: Option<&DualWrite<'_>>,
) -> Value {
    let mut procs = Vec::new();
    for _ in ranges {
        procs.push(start_worker(db_url, es, dual.map(|d| d.terms_file)).await);
    }
    let cpu_before: Vec<f64> = procs.iter().map(|w| cpu_seconds(w.pid)).collect();
    let sampler = Sampler::start(http, es, index);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, range) in procs.iter().zip(ranges) {
        let request = TaskRequest {
            model_name: "image".into(),
            table_name: "temp_import_image".into(),
            target_index: index.into(),
            start_id: range.start_id,
            end_id: range.end_id,
            filtered_index: dual.map(|d| d.filtered_index.to_string()),
        };
        let r: Value = http
            .post(format!("{}/task", w.base))
            .bearer_auth(TOKEN)
            .json(&request)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let task = r["task_id"].as_str();
        tasks.push(
            task.unwrap_or_else(|| panic!("worker refused the task: {r}"))
                .to_string(),
        );
    }
    let mut statuses = vec![Value::Null; procs.len()];
    while statuses.iter().any(Value::is_null) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (i, (w, task)) in procs.iter().zip(&tasks).enumerate() {
            if !statuses[i].is_null() {
                continue;
            }
            let s: Value = http
                .get(format!("{}/task/{task}", w.base))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if s["active"] == false {
                statuses[i] = s;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let series = sampler.finish().await;
    let cpu: f64 = procs
        .iter()
        .zip(&cpu_before)
        .map(|(w, before)| cpu_seconds(w.pid) - before)
        .sum();
    let rss: Vec<f64> = procs.iter().map(|w| peak_rss_mb(w.pid)).collect();
    for mut w in procs {
        w.child.kill().await.unwrap();
    }
    for s in &statuses {
        assert_eq!(s["error"], Value::Null, "worker task failed: {s}");
    }
    let total = |field: &str| -> u64 {
        statuses
            .iter()
            .map(|s| {
                s[field]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no {field} in the task status: {s}"))
            })
            .sum()
    };
    let indexed = total("indexed");
    let mut run = json!({
        "processes": ranges.len(),
        "indexed": indexed,
        "seconds": seconds,
        "docs_per_second": indexed as f64 / seconds,
        "client_cpu_seconds": cpu,
        "client_cpu_us_per_doc": cpu * 1e6 / indexed as f64,
        "peak_rss_mb": rss.iter().cloned().fold(0.0, f64::max),
        "peak_rss_mb_each": rss,
        "series": series,
    });
    if let Some(dual) = dual {
        run["filtered_index"] = json!(dual.filtered_index);
        for field in ["filtered_indexed", "filtered_failed", "sensitive"] {
            run[field] = json!(total(field));
        }
    }
    run
}

/// Pre-serialises every document of the range to an NDJSON file (not timed), with the
/// worker's own query and conversion. Returns the number of documents.
pub async fn write_ndjson(client: &tokio_postgres::Client, path: &Path, max: i64) -> u64 {
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    let statement = client.prepare(&select_sql(MediaType::Image)).await.unwrap();
    let (mut cursor, mut docs, mut buf) = (0i64, 0u64, Vec::new());
    loop {
        let rows = client
            .query(&statement, &[&cursor, &max, &10_000i64])
            .await
            .unwrap();
        let Some(last) = rows.last() else { break };
        cursor = last.get("id");
        for row in &rows {
            let source = SourceRow::from_row(row).unwrap();
            if let Some(doc) = to_document(MediaType::Image, &source) {
                buf.clear();
                write_bulk_action(&doc, &mut buf).unwrap();
                out.write_all(&buf).unwrap();
                docs += 1;
            }
        }
    }
    out.flush().unwrap();
    docs
}

/// Sends the first `max_docs` documents of the file in `per_request`-document bulk requests,
/// `in_flight` at once, timing only the sending.
pub async fn ceiling(
    http: &reqwest::Client,
    es: &str,
    index: &str,
    path: &Path,
    per_request: usize,
    in_flight: usize,
    max_docs: u64,
) -> Value {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(in_flight);
    let path = path.to_owned();
    // Reading the file is not Elasticsearch's work: bodies are cut ahead of the senders.
    let reader = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(std::fs::File::open(path).unwrap()).lines();
        let mut left = max_docs * 2;
        while left > 0 {
            let mut body = Vec::new();
            let mut n = 0;
            while n < per_request * 2 && left > 0 {
                match lines.next() {
                    Some(line) => {
                        body.extend_from_slice(line.unwrap().as_bytes());
                        body.push(b'\n');
                        n += 1;
                        left -= 1;
                    }
                    None => {
                        left = 0;
                    }
                }
            }
            if body.is_empty() || tx.blocking_send(body).is_err() {
                break;
            }
        }
    });
    let sampler = Sampler::start(http, es, index);
    let started = Instant::now();
    let url = format!("{es}/{index}/_bulk?filter_path=errors");
    let mut rx = rx;
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    stream
        .for_each_concurrent(in_flight, |body| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let v: Value = http
                    .post(&url)
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(v["errors"], false, "ceiling bulk had errors");
            }
        })
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let series = sampler.finish().await;
    reader.await.unwrap();
    let docs = testkit::es_count(http, es, index, None).await;
    json!({"docs": docs, "seconds": seconds, "docs_per_second": docs as f64 / seconds,
           "per_request": per_request, "in_flight": in_flight, "series": series})
}

/// The replaced worker's method (`benches/baseline.py`) as a child process over the range.
/// docs/s from the script's own clock (after its imports); client CPU and peak RSS from
/// outside, by `wait4` (the interpreter's start included: a fraction of a second).
pub async fn baseline(
    http: &reqwest::Client,
    python: &str,
    script: &Path,
    db_url: &str,
    es: &str,
    index: &str,
    range: IdRange,
) -> Value {
    // Reaped by wait4 in `wait_with_usage` (which reads its rusage), not by `Child::wait`.
    #[allow(clippy::zombie_processes)]
    let mut child = std::process::Command::new(python)
        .arg(script)
        .args(["--pg-url", db_url, "--es-url", es, "--index", index])
        .args(["--table", "temp_import_image"])
        .args(["--start-id", &range.start_id.to_string()])
        .args(["--end-id", &range.end_id.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} {}: {e}", script.display()));
    let sampler = Sampler::start(http, es, index);
    let pid = child.id();
    let usage = tokio::task::spawn_blocking(move || wait_with_usage(pid))
        .await
        .unwrap();
    let series = sampler.finish().await;
    // The script writes one short JSON line at its end: it fits the pipe's buffer.
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(usage.exit_ok, "baseline script failed: {out}");
    let reported: Value = serde_json::from_str(out.trim().lines().last().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("baseline printed no JSON ({e}): {out}"));
    let docs = reported["docs"].as_u64().unwrap();
    let seconds = reported["seconds"].as_f64().unwrap();
    json!({
        "indexed": docs,
        "failed": reported["failed"],
        "seconds": seconds,
        "docs_per_second": docs as f64 / seconds,
        "client_cpu_seconds": usage.cpu_seconds,
        "client_cpu_us_per_doc": usage.cpu_seconds * 1e6 / docs as f64,
        "peak_rss_mb": usage.peak_rss_mb,
        "series": series,
    })
}

/// PostgreSQL's raw rate for the range: `COPY (SELECT * …) TO STDOUT`, rows counted as they
/// stream in and dropped.
pub async fn pg_copy_out(client: &tokio_postgres::Client, range: IdRange) -> Value {
    let started = Instant::now();
    let stream = client
        .copy_out(&format!(
            "COPY (SELECT * FROM temp_import_image WHERE id BETWEEN {} AND {}) TO STDOUT",
            range.start_id, range.end_id
        ))
        .await
        .unwrap();
    futures::pin_mut!(stream);
    let (mut rows, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        // Text format escapes newlines inside values: one line per row.
        rows += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        bytes += chunk.len() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    json!({"rows": rows, "mb": bytes as f64 / 1e6, "seconds": seconds, "rows_per_second": rows as f64 / seconds})
}
