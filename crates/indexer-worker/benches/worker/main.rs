//! Benchmark (not a test): the worker reindexing `BENCH_ROWS` generated image rows next to
//! Elasticsearch's ceiling and the replaced Python worker, on the same documents.
//! `benches/run` runs it (and writes `benches/results/`); BENCHMARKS.md says how to read it.
//!
//! Environment: `TEST_PG_URL`, `ES_URL` (the local stack's `.local/env`); `BENCH_ROWS`
//! (default 1 000 000), `BENCH_ROUNDS` (3), `BENCH_OUT` (where the JSON goes; stdout only
//! without it), `BENCH_PYTHON` (a python with `benches/requirements.lock`; the baseline is
//! skipped without it), `BENCH_SWEEP_DOCS` (documents per ceiling sweep point, 200 000),
//! `BENCH_PROFILE_DIR` (`perf record -a` of round 1's one-worker and ceiling runs into it;
//! `benches/profile`).
//!
//! 1. Rows generated into `temp_import_image`; the documents pre-serialised to NDJSON.
//! 2. Ceiling sweep: bulk size × requests in flight, two runs each (the mean); the best is
//!    the ceiling.
//! 3. Rounds, alternating: one worker, one worker with dual write, ceiling, baseline, two
//!    workers (the range split in two), PostgreSQL `COPY … TO STDOUT`. Each index run gets a
//!    fresh index with the production mapping, 1 shard, no replicas, refresh off (DESIGN §8),
//!    and must hold every document afterwards. Each figure is reported as the median of the
//!    rounds with min–max.
//!
//! Dual write: the same task with `filtered_index` (`<index>-filtered`, also fresh, same
//! mapping), the worker started with `SENSITIVE_TERMS_URL` at a temporary copy of
//! `sample-data/sensitive-terms.txt` plus [`EXTRA_SENSITIVE_TERM`] (the bundled terms occur
//! in no generated row, so alone they would leave the filter path untested). Afterwards the
//! main index holds every document, the filtered one every document but the task's
//! `sensitive` ones, and Elasticsearch's own `terms` query agrees on which those are. Its
//! docs/s and CPU per document count each source document once (the main index's), so they
//! compare with the plain run's; `vs_worker` holds the ratios dual ÷ plain of each round.

mod measure;
mod profile;
mod runs;

use measure::{machine, summary};
use refresh_core::media::MediaType;
use refresh_core::ranges::{split_even, IdRange};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

/// Added to the bundled sensitive-terms list for the dual-write run: a tag of every 12th
/// generated row (`testkit::TAG_CASES[11]`, accuracy 0.97), so about 1 document in 12 is
/// sensitive and the filtered index gets the rest.
const EXTRA_SENSITIVE_TERM: &str = "mountain";

/// Ceiling sweep points: (documents per bulk request, requests in flight). DESIGN §8 found
/// 2000 × 4 best on this kind of machine; the points around it check that here.
const SWEEP: &[(usize, usize)] = &[
    (500, 4),
    (1000, 4),
    (2000, 4),
    (4000, 4),
    (2000, 2),
    (2000, 8),
];

/// Round 1 only: one profile per phase is enough, and later rounds stay unperturbed.
async fn profile_round(round: usize, phase: &str) -> profile::Profile {
    if round == 1 {
        profile::Profile::start(phase).await
    } else {
        profile::Profile::disabled()
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn fresh_index(es: &str, kind: &str) -> String {
    let index = format!("image-{}", testkit::unique_name(&format!("bench_{kind}")));
    create_index(es, &index).await;
    index
}

async fn create_index(es: &str, index: &str) {
    let client = refresh_core::es::SearchClient::new(es).unwrap();
    refresh_core::es::create_index(&client, MediaType::Image, index, 1)
        .await
        .unwrap();
}

/// The dual-write run's terms list: the bundled one plus [`EXTRA_SENSITIVE_TERM`], in a
/// temporary file (the path goes to the worker as `SENSITIVE_TERMS_URL`). Returns the path
/// and the terms as the worker parses them.
fn write_terms_file() -> (PathBuf, Vec<String>) {
    let bundled = testkit::workspace_root().join("sample-data/sensitive-terms.txt");
    let text = std::fs::read_to_string(&bundled)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", bundled.display()));
    let text = format!("{}\n{EXTRA_SENSITIVE_TERM}\n", text.trim_end());
    let path = std::env::temp_dir().join(format!("{}.txt", testkit::unique_name("bench_terms")));
    std::fs::write(&path, &text).unwrap();
    (path, refresh_core::es::parse_sensitive_terms(&text))
}

/// Checks what a dual-write run left (both indices refreshed and counted) against the task's
/// counts and Elasticsearch's own reading of the terms: every document in the main index,
/// every one but the sensitive ones in the filtered index.
async fn check_dual_write(
    http: &reqwest::Client,
    es: &str,
    (index, filtered): (&str, &str),
    terms: &[String],
    run: &Value,
    docs: u64,
) {
    let field = |name: &str| run[name].as_u64().unwrap();
    let (indexed, sensitive) = (field("indexed"), field("sensitive"));
    assert_eq!(
        indexed, docs,
        "dual write: the task indexed {indexed} of {docs} documents"
    );
    assert_eq!(
        field("filtered_failed"),
        0,
        "dual write: filtered documents failed"
    );
    assert!(
        sensitive > 0,
        "dual write: no document was sensitive, the filter path went untested"
    );
    assert_eq!(
        field("filtered_indexed") + sensitive,
        indexed,
        "dual write: filtered_indexed + sensitive != indexed"
    );
    assert_eq!(
        testkit::es_count(http, es, index, None).await,
        docs,
        "dual write lost documents of the main index"
    );
    assert_eq!(
        testkit::es_count(http, es, filtered, None).await,
        docs - sensitive,
        "dual write: the filtered index does not hold main − sensitive"
    );
    let query = refresh_core::es::sensitive_documents_query(terms).unwrap();
    assert_eq!(
        testkit::es_count(http, es, index, Some(&query)).await,
        sensitive,
        "dual write: Elasticsearch finds another number of sensitive documents in the main index"
    );
    assert_eq!(
        testkit::es_count(http, es, filtered, Some(&query)).await,
        0,
        "dual write: sensitive documents in the filtered index"
    );
}

/// `{docs_per_second, client_cpu_us_per_doc}`: each round's dual-write figure ÷ the plain
/// worker's of the same round, summarised.
fn dual_vs_plain(plain: &[Value], dual: &[Value]) -> Value {
    let ratios = |field: &str| -> Vec<f64> {
        plain
            .iter()
            .zip(dual)
            .filter_map(|(p, d)| Some(d[field].as_f64()? / p[field].as_f64()?))
            .collect()
    };
    json!({
        "docs_per_second": summary(&ratios("docs_per_second")),
        "client_cpu_us_per_doc": summary(&ratios("client_cpu_us_per_doc")),
    })
}

async fn drop_index(http: &reqwest::Client, es: &str, index: &str) {
    http.delete(format!("{es}/{index}")).send().await.unwrap();
}

/// Generates `rows` image rows into `temp_import_image` (some deleted, some mature);
/// returns the id span.
async fn generate(dbs: &testkit::TestDatabases, rows: i64) -> IdRange {
    dbs.api
        .batch_execute(
            "CREATE TABLE temp_import_image (LIKE image INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
        )
        .await
        .unwrap();
    // In chunks so the generator's single statement stays a reasonable size.
    let chunk = 200_000;
    let (mut done, mut seed) = (0, 1);
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
    IdRange {
        start_id: bounds.get(0),
        end_id: bounds.get(1),
    }
}

/// Per-method figures over the rounds, and the runs themselves (without their series).
fn method_summary(runs: &[Value], fields: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for field in fields {
        let values: Vec<f64> = runs.iter().filter_map(|r| r[*field].as_f64()).collect();
        out.insert(field.to_string(), summary(&values));
    }
    let bare: Vec<Value> = runs
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("series");
            r
        })
        .collect();
    out.insert("runs".into(), json!(bare));
    Value::Object(out)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks; nothing to list here.
    }
    let rows: i64 = env_or("BENCH_ROWS", 1_000_000);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let sweep_docs: u64 = env_or("BENCH_SWEEP_DOCS", 200_000);
    let python = std::env::var("BENCH_PYTHON").ok().filter(|p| !p.is_empty());
    let baseline_script = testkit::workspace_root().join("benches/baseline.py");
    let machine = machine();
    let es = testkit::es_url();
    let http = reqwest::Client::new();
    let dbs = testkit::TestDatabases::create().await;

    println!("generating {rows} image rows…");
    let t = Instant::now();
    let span = generate(&dbs, rows).await;
    let ndjson = std::env::temp_dir().join(format!("{}.ndjson", testkit::unique_name("bench")));
    let docs = runs::write_ndjson(&dbs.api, &ndjson, span.end_id).await;
    let (terms_file, terms) = write_terms_file();
    println!(
        "generated and pre-serialised ({docs} documents) in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // Two passes over the points, the second in reverse order, so a passing burst of load
    // elsewhere does not crown a point; each point's figure is the mean of its two runs.
    let n = sweep_docs.min(docs);
    let mut sweep: Vec<Value> = Vec::new();
    let order: Vec<_> = SWEEP.iter().chain(SWEEP.iter().rev()).collect();
    for &&(per_request, in_flight) in &order {
        let index = fresh_index(&es, "sweep").await;
        let run = runs::ceiling(&http, &es, &index, &ndjson, per_request, in_flight, n).await;
        drop_index(&http, &es, &index).await;
        assert_eq!(run["docs"].as_u64(), Some(n), "sweep point lost documents");
        let dps = run["docs_per_second"].as_f64().unwrap();
        println!("ceiling sweep {per_request} × {in_flight}: {dps:.0} docs/s");
        match sweep
            .iter_mut()
            .find(|p| p["per_request"] == per_request && p["in_flight"] == in_flight)
        {
            Some(point) => point["runs"].as_array_mut().unwrap().push(json!(dps)),
            None => sweep.push(json!({"per_request": per_request, "in_flight": in_flight,
                                      "docs": n, "runs": [dps]})),
        }
    }
    for point in &mut sweep {
        let runs = point["runs"].as_array().unwrap();
        let mean = runs.iter().filter_map(Value::as_f64).sum::<f64>() / runs.len() as f64;
        point["docs_per_second"] = json!(mean);
    }
    let best = sweep
        .iter()
        .max_by(|a, b| {
            a["docs_per_second"]
                .as_f64()
                .partial_cmp(&b["docs_per_second"].as_f64())
                .unwrap()
        })
        .unwrap()
        .clone();
    let (per_request, in_flight) = (
        best["per_request"].as_u64().unwrap() as usize,
        best["in_flight"].as_u64().unwrap() as usize,
    );
    println!("ceiling at {per_request} docs per request × {in_flight} in flight");

    let halves = split_even(span.start_id, span.end_id, 2).unwrap();
    let (mut one, mut dual, mut two, mut ceiling, mut baseline, mut copy_out) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for round in 1..=rounds {
        let index = fresh_index(&es, "worker").await;
        let profile = profile_round(round, "worker").await;
        let run = runs::workers(&http, &dbs.api_url, &es, &index, &[span], None).await;
        profile.stop();
        assert_eq!(
            testkit::es_count(&http, &es, &index, None).await,
            docs,
            "worker lost documents"
        );
        drop_index(&http, &es, &index).await;
        println!(
            "round {round}: worker {:.0} docs/s",
            run["docs_per_second"].as_f64().unwrap()
        );
        one.push(run);

        let index = fresh_index(&es, "dual").await;
        let filtered = format!("{index}-filtered");
        create_index(&es, &filtered).await;
        let dual_write = runs::DualWrite {
            filtered_index: &filtered,
            terms_file: &terms_file,
        };
        let run = runs::workers(&http, &dbs.api_url, &es, &index, &[span], Some(&dual_write)).await;
        check_dual_write(&http, &es, (&index, &filtered), &terms, &run, docs).await;
        drop_index(&http, &es, &index).await;
        drop_index(&http, &es, &filtered).await;
        println!(
            "round {round}: worker, dual write {:.0} docs/s ({} sensitive left out)",
            run["docs_per_second"].as_f64().unwrap(),
            run["sensitive"]
        );
        dual.push(run);

        let index = fresh_index(&es, "ceiling").await;
        let profile = profile_round(round, "ceiling").await;
        let run = runs::ceiling(&http, &es, &index, &ndjson, per_request, in_flight, docs).await;
        profile.stop();
        assert_eq!(run["docs"].as_u64(), Some(docs), "ceiling lost documents");
        drop_index(&http, &es, &index).await;
        println!(
            "round {round}: ceiling {:.0} docs/s",
            run["docs_per_second"].as_f64().unwrap()
        );
        ceiling.push(run);

        if let Some(python) = &python {
            let index = fresh_index(&es, "baseline").await;
            let run = runs::baseline(
                &http,
                python,
                &baseline_script,
                &dbs.api_url,
                &es,
                &index,
                span,
            )
            .await;
            assert_eq!(
                testkit::es_count(&http, &es, &index, None).await,
                docs,
                "baseline lost documents"
            );
            drop_index(&http, &es, &index).await;
            println!(
                "round {round}: baseline {:.0} docs/s",
                run["docs_per_second"].as_f64().unwrap()
            );
            baseline.push(run);
        }

        let index = fresh_index(&es, "workers2").await;
        let run = runs::workers(&http, &dbs.api_url, &es, &index, &halves, None).await;
        assert_eq!(
            testkit::es_count(&http, &es, &index, None).await,
            docs,
            "two workers lost documents"
        );
        drop_index(&http, &es, &index).await;
        println!(
            "round {round}: two workers {:.0} docs/s",
            run["docs_per_second"].as_f64().unwrap()
        );
        two.push(run);

        let run = runs::pg_copy_out(&dbs.api, span).await;
        println!(
            "round {round}: COPY TO STDOUT {:.0} rows/s",
            run["rows_per_second"].as_f64().unwrap()
        );
        copy_out.push(run);
    }
    let _ = std::fs::remove_file(&ndjson);
    let _ = std::fs::remove_file(&terms_file);
    dbs.drop_all().await;
    if python.is_none() {
        println!("baseline skipped: BENCH_PYTHON is not set (benches/run sets it)");
    }

    let worker_fields = &[
        "docs_per_second",
        "client_cpu_us_per_doc",
        "peak_rss_mb",
        "seconds",
    ];
    let last_series = |runs: &[Value]| runs.last().map(|r| r["series"].clone());
    let baseline_summary = if baseline.is_empty() {
        Value::Null
    } else {
        method_summary(&baseline, worker_fields)
    };
    let mut worker_dual_write = method_summary(&dual, worker_fields);
    worker_dual_write["vs_worker"] = dual_vs_plain(&one, &dual);
    worker_dual_write["sensitive_terms"] = json!(terms);
    worker_dual_write["sensitive"] = dual.last().map_or(Value::Null, |r| r["sensitive"].clone());
    worker_dual_write["filtered_docs"] = dual
        .last()
        .map_or(Value::Null, |r| r["filtered_indexed"].clone());
    let result = json!({
        "rows": rows,
        "docs": docs,
        "rounds": rounds,
        "machine": machine,
        "es_version": http.get(&es).send().await.unwrap().json::<Value>().await.unwrap()["version"]["number"],
        "at": chrono::Utc::now().to_rfc3339(),
        "ceiling_sweep": {"docs_per_point": n, "points": sweep,
                          "best": {"per_request": per_request, "in_flight": in_flight}},
        "worker": method_summary(&one, worker_fields),
        // The same task also writing `<index>-filtered`: figures per source document.
        "worker_dual_write": worker_dual_write,
        "workers_2": method_summary(&two, worker_fields),
        "ceiling": method_summary(&ceiling, &["docs_per_second", "seconds"]),
        "baseline": baseline_summary,
        "pg_copy_out": method_summary(&copy_out, &["rows_per_second", "seconds"]),
        // Documents indexed over time, from the last round (benches/plot.py).
        "series": {"worker": last_series(&one), "worker_dual_write": last_series(&dual),
                   "workers_2": last_series(&two),
                   "ceiling": last_series(&ceiling), "baseline": last_series(&baseline)},
    });
    let text = serde_json::to_string_pretty(&result).unwrap() + "\n";
    match std::env::var("BENCH_OUT").ok().filter(|p| !p.is_empty()) {
        Some(out) => {
            std::fs::write(PathBuf::from(&out), text).unwrap();
            println!("written to {out}");
        }
        None => println!("{text}"),
    }
}
