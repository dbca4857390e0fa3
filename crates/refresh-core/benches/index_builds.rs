//! Benchmark: step 8's index builds one after another (parallelism 1) vs. several at once
//! (parallelism N, each on its own session), on a generated temp table with the live image
//! table's 14 indexes. Each run is the whole `reapply` job as the worker runs it: 13 builds
//! (the copy's primary key is renamed, not built), 3 unique constraints attached, `ANALYZE`.
//! It checks both leave the same valid indexes.
//!
//! Writes `benches/results/index_builds.json` with `index_builds_sequential_s` and
//! `index_builds_parallel_s` (medians), for capacity estimates to reuse.
//!
//! Run: `TEST_PG_URL=… cargo bench -p refresh-core --bench index_builds`
//! (`BENCH_ROWS`, default 300 000; `BENCH_PARALLELISM`, default 4; `BENCH_RUNS`, default 3,
//! the two modes alternating).

use refresh_core::media::MediaType;
use refresh_core::pg::job::{CancellationToken, JobProgress, SessionSafeguards};
use refresh_core::pg::promote::{reapply_constraints_on, ReapplyOptions};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Instant;
use support::{env_or, median, reset_temp_indexes as reset, setting, temp_indexes};
use testkit::{insert_image_rows, TestDatabases};

mod support;

#[tokio::main]
async fn main() {
    let rows: i64 = env_or("BENCH_ROWS", 300_000);
    let parallelism: usize = env_or("BENCH_PARALLELISM", 4);
    let runs: usize = env_or("BENCH_RUNS", 3).max(1);
    let dbs = TestDatabases::create().await;
    let api = &dbs.api;
    let loading = Instant::now();
    api.batch_execute(
        "CREATE TABLE temp_import_image (LIKE image INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
    )
    .await
    .unwrap();
    insert_image_rows(api, "temp_import_image", rows, 17).await;
    // Separate calls: a multi-statement string runs as one transaction, which VACUUM refuses.
    for sql in [
        "ALTER TABLE temp_import_image ADD PRIMARY KEY (id)",
        "VACUUM ANALYZE temp_import_image",
    ] {
        api.batch_execute(sql).await.unwrap();
    }
    let table_bytes: i64 = api
        .query_one("SELECT pg_table_size('temp_import_image')", &[])
        .await
        .unwrap()
        .get(0);
    println!(
        "{rows} rows ({:.1} MB) loaded in {:.1}s",
        table_bytes as f64 / 1e6,
        loading.elapsed().as_secs_f64()
    );

    let mut timings: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut shapes = BTreeMap::new();
    let mut statements = 0;
    for run in 0..runs {
        // Alternate the order so neither mode always runs on a warmer cache.
        let order = if run % 2 == 0 {
            [1, parallelism]
        } else {
            [parallelism, 1]
        };
        for n in order {
            reset(api).await;
            let options = ReapplyOptions {
                parallelism: n,
                deadline: None,
                wait_for_other_builds: true,
            };
            let progress = JobProgress::default();
            let started = Instant::now();
            let report = reapply_constraints_on(
                &dbs.api_url,
                &SessionSafeguards::default(),
                MediaType::Image,
                &options,
                &progress,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
            let seconds = started.elapsed().as_secs_f64();
            assert!(report.done);
            statements = progress.snapshot().done;
            println!("run {run}: parallelism {n}: {seconds:.2}s ({statements} statements)");
            timings.entry(n).or_default().push(seconds);
            let shape = temp_indexes(api).await;
            assert!(shape.values().all(|(_, valid)| *valid), "{shape:?}");
            shapes.insert(n, shape);
        }
    }
    assert_eq!(
        shapes.get(&1),
        shapes.get(&parallelism),
        "both modes must build the same indexes"
    );
    let sequential = median(&timings[&1]).unwrap();
    let parallel = median(&timings[&parallelism]).unwrap();
    let result = json!({
        "benchmark": "index_builds",
        "what": "reapply job on temp_import_image: 13 index builds + 3 unique constraints attached + ANALYZE",
        "rows": rows,
        "table_mb": (table_bytes as f64 / 1e5).round() / 10.0,
        "indexes_on_table": shapes[&1].len(),
        "statements": statements,
        "parallelism": parallelism,
        "runs": runs,
        "index_builds_sequential_s": (sequential * 100.0).round() / 100.0,
        "index_builds_parallel_s": (parallel * 100.0).round() / 100.0,
        "speedup": (sequential / parallel * 100.0).round() / 100.0,
        "sequential_runs_s": timings[&1],
        "parallel_runs_s": timings[&parallelism],
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "server": {
            "server_version": setting(api, "server_version").await,
            "maintenance_work_mem": setting(api, "maintenance_work_mem").await,
            "max_parallel_maintenance_workers": setting(api, "max_parallel_maintenance_workers").await,
        },
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    let text = serde_json::to_string_pretty(&result).unwrap() + "\n";
    println!("{text}");
    let dir = testkit::workspace_root().join("benches/results");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index_builds.json"), text).unwrap();
    dbs.drop_all().await;
}
