//! Benchmark (not a test): the worker binary reindexing `BENCH_ROWS` generated image rows
//! (default 1 000 000), next to Elasticsearch's own ceiling on the same documents.
//!
//! `cargo bench -p indexer-worker --bench worker` with `TEST_PG_URL` and `ES_URL` set.
//! Writes `bench-results/worker.json` (workspace root); the summary goes to BENCHMARKS.md.
//!
//! - worker: the release binary as a child process, one task over the whole range; docs/s
//!   from POST to the task's end; client CPU = the process's utime + stime; peak RSS =
//!   VmHWM of the process.
//! - ceiling: the same documents pre-serialised to an NDJSON file first, then sent as
//!   2000 documents per bulk request × 4 in flight (DESIGN §8), timing only the sending.

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use refresh_core::document::{select_sql, to_document, write_bulk_action, SourceRow};
use refresh_core::media::MediaType;
use serde_json::{json, Value};

const TOKEN: &str = "bench-token";

async fn create_index(es: &str, index: &str) {
    // Production settings and mappings, one shard, no replicas, refresh off (DESIGN §8).
    let client = refresh_core::es::SearchClient::new(es).unwrap();
    refresh_core::es::create_index(&client, MediaType::Image, index, 1)
        .await
        .unwrap();
}

async fn count(http: &reqwest::Client, es: &str, index: &str) -> u64 {
    http.post(format!("{es}/{index}/_refresh"))
        .send()
        .await
        .unwrap();
    let v: Value = http
        .get(format!("{es}/{index}/_count"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["count"].as_u64().unwrap()
}

fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    ticks as f64 / hz
}

async fn run_worker(db_url: &str, es: &str, index: &str, min: i64, max: i64) -> Value {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_indexer-worker"))
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env("API_DB_URL", db_url)
        .env("ES_URL", es)
        .env("WORKER_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    while http
        .get(format!("{base}/healthcheck"))
        .send()
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let r: Value = http
        .post(format!("{base}/task"))
        .bearer_auth(TOKEN)
        .json(&json!({"model_name": "image", "table_name": "temp_import_image", "target_index": index, "start_id": min, "end_id": max}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let task = r["task_id"].as_str().unwrap().to_string();
    let status = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let s: Value = http
            .get(format!("{base}/task/{task}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["active"] == false {
            break s;
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu_before;
    let peak_rss_kb = proc_field(pid, "status", "VmHWM:").unwrap_or(0);
    child.kill().await.unwrap();
    assert_eq!(status["error"], Value::Null, "worker task failed: {status}");
    let indexed = status["indexed"].as_u64().unwrap();
    json!({
        "indexed": indexed,
        "skipped": status["skipped"],
        "seconds": elapsed,
        "docs_per_second": indexed as f64 / elapsed,
        "client_cpu_seconds": cpu,
        "client_cpu_us_per_doc": cpu * 1e6 / indexed as f64,
        "peak_rss_mb": peak_rss_kb as f64 / 1024.0,
    })
}

/// Pre-serialises every document of the range to an NDJSON file (not timed).
async fn write_ndjson(client: &tokio_postgres::Client, path: &std::path::Path, max: i64) -> u64 {
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

/// Sends the file in `per_request`-document bulk requests, `in_flight` at once.
async fn ceiling(
    http: &reqwest::Client,
    es: &str,
    index: &str,
    path: &std::path::Path,
    per_request: usize,
    in_flight: usize,
) -> Value {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(in_flight);
    let path = path.to_owned();
    let reader = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(std::fs::File::open(path).unwrap()).lines();
        loop {
            let mut body = Vec::new();
            let mut n = 0;
            while n < per_request * 2 {
                match lines.next() {
                    Some(line) => {
                        body.extend_from_slice(line.unwrap().as_bytes());
                        body.push(b'\n');
                        n += 1;
                    }
                    None => break,
                }
            }
            if body.is_empty() || tx.blocking_send(body).is_err() {
                break;
            }
        }
    });
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
    reader.await.unwrap();
    let docs = count(http, es, index).await;
    json!({"docs": docs, "seconds": seconds, "docs_per_second": docs as f64 / seconds, "per_request": per_request, "in_flight": in_flight})
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks; nothing to list here.
    }
    let rows: i64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let es = testkit::es_url();
    let http = reqwest::Client::new();
    let dbs = testkit::TestDatabases::create().await;
    println!("generating {rows} image rows…");
    let t = Instant::now();
    dbs.api
        .batch_execute(
            "CREATE TABLE temp_import_image (LIKE image INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
        )
        .await
        .unwrap();
    // In chunks so the generator's single statement stays a reasonable size.
    let chunk = 200_000;
    let mut done = 0;
    let mut seed = 1;
    while done < rows {
        let n = chunk.min(rows - done);
        testkit::insert_image_rows(&dbs.api, "temp_import_image", n, seed).await;
        done += n;
        seed += 1;
    }
    dbs.api
        .batch_execute(
            "ALTER TABLE temp_import_image ADD PRIMARY KEY (id); ANALYZE temp_import_image",
        )
        .await
        .unwrap();
    testkit::mark_deleted(&dbs.api, "api_deletedimage", rows.min(chunk), 1, 50).await;
    testkit::mark_mature(&dbs.api, "api_matureimage", rows.min(chunk), 1, 20).await;
    let bounds = dbs
        .api
        .query_one(
            "SELECT min(id)::bigint, max(id)::bigint FROM temp_import_image",
            &[],
        )
        .await
        .unwrap();
    let (min, max): (i64, i64) = (bounds.get(0), bounds.get(1));
    println!("generated in {:.1}s", t.elapsed().as_secs_f64());

    let worker_index = format!("image-{}", testkit::unique_name("bench_worker"));
    create_index(&es, &worker_index).await;
    println!("worker run…");
    let worker = run_worker(&dbs.api_url, &es, &worker_index, min, max).await;
    assert_eq!(
        count(&http, &es, &worker_index).await,
        worker["indexed"].as_u64().unwrap()
    );
    http.delete(format!("{es}/{worker_index}"))
        .send()
        .await
        .unwrap();
    println!("worker: {worker}");

    let ndjson = std::env::temp_dir().join(format!("{}.ndjson", testkit::unique_name("bench")));
    let docs = write_ndjson(&dbs.api, &ndjson, max).await;
    let ceiling_index = format!("image-{}", testkit::unique_name("bench_ceiling"));
    create_index(&es, &ceiling_index).await;
    println!("ceiling run ({docs} docs pre-serialised)…");
    let ceiling = ceiling(&http, &es, &ceiling_index, &ndjson, 2000, 4).await;
    http.delete(format!("{es}/{ceiling_index}"))
        .send()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&ndjson);
    println!("ceiling: {ceiling}");
    dbs.drop_all().await;

    let ratio =
        worker["docs_per_second"].as_f64().unwrap() / ceiling["docs_per_second"].as_f64().unwrap();
    let result = json!({
        "rows": rows,
        "worker": worker,
        "es_ceiling": ceiling,
        "worker_to_ceiling_ratio": ratio,
        "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
        "es_version": http.get(&es).send().await.unwrap().json::<Value>().await.unwrap()["version"]["number"],
        "at": chrono::Utc::now().to_rfc3339(),
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench-results");
    std::fs::create_dir_all(&dir).unwrap();
    let name = if rows == 1_000_000 {
        "worker.json".to_string()
    } else {
        format!("worker-{rows}.json")
    };
    std::fs::write(
        dir.join(&name),
        serde_json::to_string_pretty(&result).unwrap() + "\n",
    )
    .unwrap();
    println!("{}", serde_json::to_string_pretty(&result).unwrap());
    println!("written to bench-results/{name}");
}
