//! Benchmark (issue 10 §2): the copy step and step 8's index builds at catalog scale.
//!
//! 1. Generates `BENCH_ROWS` catalog image rows (default 10 000 000) server-side
//!    (`testkit::insert_narrow_image_rows`: testkit's rows without the ~5 KB description of
//!    every 11th row), in statements of `BENCH_CHUNK` rows; the catalog table keeps only its
//!    primary key (the index the copy's range scans use), then `VACUUM ANALYZE`. One row in
//!    `BENCH_DELETED_EVERY` (100) is in `api_deletedimage`.
//! 2. Runs the copy exactly as the state machine does: `copy_data` calls (production, tags
//!    filtered inside the `SELECT`, `defer_finish`, the Lambda's 600 s time budget) until
//!    `done`, then the worker's `finish_copy_job` (the primary key). Every batch's duration
//!    is taken from the library's own "copied a batch" event (a tracing layer), with its
//!    position in the key range; reported: the median batch time of the first, middle and
//!    last tenth of the table, last / first, and rows/s of the whole copy. Then the same copy
//!    again over `BENCH_COPY_SESSIONS` (the pipeline's default, 4) sessions, one key lane
//!    each, into a fresh temp table: its rows/s and the speedup over one session.
//! 3. Drops the catalog table (disk), then runs step 8 (`reapply_constraints_on`, the
//!    worker's `reapply` job: 13 index builds, 3 unique constraints attached, `ANALYZE`) on
//!    the copied table, one build at a time vs `BENCH_PARALLELISM` (4) at once,
//!    `BENCH_INDEX_RUNS` (3) runs of each, alternating (A B, B A, A B).
//! 4. Promotes the table (`promote_table`, then `validate_foreign_keys`), timed.
//!
//! Both databases are dropped at the end (and on a panic, by `TestDatabases`' drop). Refuses
//! to start, and stops between phases, when the disk holding PostgreSQL's data would keep less
//! than `BENCH_MIN_FREE_GB` (8) free. Writes `BENCH_OUT` (default
//! `benches/results/copy_scale-<rows>.json`); `benches/capacity.py` reads it.
//!
//! Run: `TEST_PG_URL=… cargo bench -p refresh-core --bench copy_scale`, or `benches/run --scale`.

use refresh_core::environment::Environment;
use refresh_core::media::MediaType;
use refresh_core::pg::copy::{
    copy_data, finish_copy_job, CopyProgress, CopyRequest, DEFAULT_BATCH_SIZE, DEFAULT_SESSIONS,
    MAX_SESSIONS,
};
use refresh_core::pg::job::{
    connect_job_session, CancellationToken, JobProgress, SessionSafeguards,
};
use refresh_core::pg::promote::{
    promote_table, reapply_constraints_on, validate_foreign_keys, ReapplyOptions,
};
use refresh_core::settings::{CatalogFdw, SecretString};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use support::{env_or, median, reset_temp_indexes, round, setting, temp_indexes};
use testkit::{insert_narrow_image_rows, mark_deleted, Client, TestDatabases};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

mod support;

/// Disk the run needs per generated row at most (catalog table and key, temp table, its 14
/// indexes, WAL and sort files), from the 1 M-row run with margin; only for the check before
/// the start.
const NEED_BYTES_PER_ROW: u64 = 1_600;

// ------------------------------------------------------------------ batch clock

/// What the clock saw, in order.
#[derive(Debug, Clone, Copy)]
enum Mark {
    /// A `copy_data` call started.
    Call(Instant),
    /// The library logged "copied a batch": rows read from the catalog, rows inserted.
    Batch {
        at: Instant,
        scanned: u64,
        inserted: u64,
    },
}

/// A tracing layer that timestamps the copy's own per-batch event, so the batches are timed
/// inside the real `copy_data` (one transaction per call, as in the pipeline).
#[derive(Clone, Default)]
struct BatchClock {
    marks: Arc<Mutex<Vec<Mark>>>,
}

#[derive(Default)]
struct BatchFields {
    message: String,
    scanned: Option<u64>,
    inserted: Option<u64>,
    rows_scanned: u64,
}

impl Visit for BatchFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "batch_rows" => self.scanned = Some(value),
            "batch_inserted" => self.inserted = Some(value),
            "rows_scanned" => self.rows_scanned = value,
            _ => {}
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_u64(field, value.max(0) as u64);
    }
}

impl<S: tracing::Subscriber> Layer<S> for BatchClock {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let at = Instant::now();
        let mut fields = BatchFields::default();
        event.record(&mut fields);
        let (Some(scanned), Some(inserted)) = (fields.scanned, fields.inserted) else {
            return;
        };
        if fields.message != "copied a batch" {
            return;
        }
        let mut marks = self.marks.lock().unwrap();
        let since = marks
            .last()
            .map(|m| match m {
                Mark::Call(t) | Mark::Batch { at: t, .. } => *t,
            })
            .map(|t| at.duration_since(t).as_secs_f64())
            .unwrap_or(0.0);
        marks.push(Mark::Batch {
            at,
            scanned,
            inserted,
        });
        let n = marks
            .iter()
            .filter(|m| matches!(m, Mark::Batch { .. }))
            .count();
        if n % 20 == 0 {
            println!(
                "  batch {n}: {scanned} rows in {since:.2}s, {} rows read so far",
                fields.rows_scanned
            );
        }
    }
}

impl BatchClock {
    fn call_started(&self) {
        self.marks.lock().unwrap().push(Mark::Call(Instant::now()));
    }
}

/// One timed batch.
#[derive(Debug, Clone)]
struct Batch {
    scanned: u64,
    inserted: u64,
    seconds: f64,
    /// The first batch of a call also carries the call's set-up (FDW server, column lookup).
    first_of_call: bool,
    /// Where the batch's rows sit in the table's key order, 0–1 (their middle).
    position: f64,
}

fn batches(marks: &[Mark]) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut last: Option<Instant> = None;
    let mut first_of_call = false;
    for mark in marks {
        match *mark {
            Mark::Call(t) => {
                last = Some(t);
                first_of_call = true;
            }
            Mark::Batch {
                at,
                scanned,
                inserted,
            } => {
                let seconds = last.map_or(0.0, |t| at.duration_since(t).as_secs_f64());
                out.push(Batch {
                    scanned,
                    inserted,
                    seconds,
                    first_of_call,
                    position: 0.0,
                });
                last = Some(at);
                first_of_call = false;
            }
        }
    }
    let total: u64 = out.iter().map(|b| b.scanned).sum();
    let mut before = 0u64;
    for b in &mut out {
        b.position = (before as f64 + b.scanned as f64 / 2.0) / total.max(1) as f64;
        before += b.scanned;
    }
    out
}

/// The batches of one part of the table: their count and median time, over the batches that
/// came back (nearly) full (a window that held fewer rows is a shorter batch, not a slower
/// one), and their median time per row over all of them.
fn part(batches: &[Batch], from: f64, to: f64, batch_size: u64) -> Value {
    let inside: Vec<&Batch> = batches
        .iter()
        .filter(|b| b.position >= from && b.position < to)
        .collect();
    let full: Vec<f64> = inside
        .iter()
        .filter(|b| b.scanned as f64 >= 0.9 * batch_size as f64)
        .map(|b| b.seconds)
        .collect();
    let per_row: Vec<f64> = inside
        .iter()
        .filter(|b| b.scanned > 0)
        .map(|b| b.seconds / b.scanned as f64 * 1e6)
        .collect();
    json!({
        "from": from,
        "to": to,
        "batches": inside.len(),
        "full_batches": full.len(),
        "median_batch_s": median(&full).map(|x| round(x, 3)),
        "median_us_per_row": median(&per_row).map(|x| round(x, 2)),
    })
}

// ------------------------------------------------------------------ database helpers

/// `copy_data` calls until `done`, as the state machine makes them (`before_call` runs before
/// each): the last progress, each call's seconds, and the whole copy's seconds.
async fn copy_to_done(
    api: &mut Client,
    more_sessions: &mut [Client],
    fdw: &CatalogFdw,
    request: &CopyRequest,
    mut before_call: impl FnMut(),
) -> (CopyProgress, Vec<f64>, f64) {
    let copying = Instant::now();
    let mut cursor = None;
    let mut calls = Vec::new();
    loop {
        before_call();
        let call = Instant::now();
        let progress = copy_data(api, more_sessions, fdw, request, cursor.as_ref())
            .await
            .unwrap();
        calls.push(round(call.elapsed().as_secs_f64(), 2));
        cursor = progress.cursor.clone();
        if progress.done {
            return (progress, calls, copying.elapsed().as_secs_f64());
        }
    }
}

async fn one_i64(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Free bytes on the file system holding PostgreSQL's data directory (`df`).
async fn free_bytes(admin: &Client) -> Option<u64> {
    let dir: String = admin
        .query_one("SELECT current_setting('data_directory')", &[])
        .await
        .ok()?
        .get(0);
    let out = std::process::Command::new("df")
        .args(["-Pk", &dir])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kb: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Heap hits, heap reads, index hits, index reads of the catalog's image table so far.
async fn catalog_io(catalog: &Client) -> Vec<i64> {
    catalog
        .batch_execute("SELECT pg_stat_clear_snapshot()")
        .await
        .unwrap();
    let row = catalog
        .query_one(
            "SELECT coalesce(heap_blks_hit, 0), coalesce(heap_blks_read, 0), \
                    coalesce(idx_blks_hit, 0), coalesce(idx_blks_read, 0) \
               FROM pg_statio_user_tables WHERE relname = 'image'",
            &[],
        )
        .await
        .unwrap();
    (0..4).map(|i| row.get::<_, i64>(i)).collect()
}

struct DiskGuard {
    min_free: u64,
    lowest: Option<u64>,
    /// The 1-minute load average at each check: other work on the machine moves every figure.
    load: Vec<(String, f64)>,
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl DiskGuard {
    /// Panics (which drops the test databases) when less than the floor is free.
    async fn check(&mut self, admin: &Client, when: &str) {
        if let Some(load) = load_average() {
            self.load.push((when.to_string(), load));
        }
        let Some(free) = free_bytes(admin).await else {
            println!("  (free disk unknown {when})");
            return;
        };
        self.lowest = Some(self.lowest.map_or(free, |l| l.min(free)));
        println!(
            "  disk: {:.1} GB free {when} (load {})",
            free as f64 / 1e9,
            self.load.last().map_or(0.0, |(_, l)| *l)
        );
        assert!(
            free >= self.min_free,
            "only {:.1} GB free {when}, below BENCH_MIN_FREE_GB ({:.0} GB): stopping (the databases are dropped)",
            free as f64 / 1e9,
            self.min_free as f64 / 1e9
        );
    }
}

fn gb(bytes: i64) -> f64 {
    round(bytes as f64 / 1e9, 3)
}

fn commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(testkit::workspace_root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// ------------------------------------------------------------------ the run

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks; nothing to list here.
    }
    let rows: i64 = env_or("BENCH_ROWS", 10_000_000);
    let chunk: i64 = env_or("BENCH_CHUNK", 1_000_000).max(1);
    let deleted_every: i64 = env_or("BENCH_DELETED_EVERY", 100).max(1);
    let parallelism: usize = env_or("BENCH_PARALLELISM", 4).max(2);
    let index_runs: usize = env_or("BENCH_INDEX_RUNS", 3).max(1);
    let batch_size: u64 = env_or("BENCH_BATCH_SIZE", DEFAULT_BATCH_SIZE).max(1);
    let min_free_gb: f64 = env_or("BENCH_MIN_FREE_GB", 8.0);
    let out = std::env::var("BENCH_OUT")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            testkit::workspace_root()
                .join(format!("benches/results/copy_scale-{rows}.json"))
                .display()
                .to_string()
        });
    let load_at_start = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let started = Instant::now();

    let clock = BatchClock::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(clock.clone()))
        .unwrap();

    let admin = testkit::connect(&testkit::test_pg_url()).await;
    let mut disk = DiskGuard {
        min_free: (min_free_gb * 1e9) as u64,
        lowest: None,
        load: Vec::new(),
    };
    let free_at_start = free_bytes(&admin).await;
    if let Some(free) = free_at_start {
        let need = rows as u64 * NEED_BYTES_PER_ROW;
        assert!(
            free.saturating_sub(need) >= disk.min_free,
            "{rows} rows need up to {:.1} GB; {:.1} GB are free and {min_free_gb} GB must stay free \
             (BENCH_MIN_FREE_GB): not starting. Free disk space or run fewer rows (BENCH_ROWS).",
            need as f64 / 1e9,
            free as f64 / 1e9
        );
    }
    disk.check(&admin, "at the start").await;

    let mut dbs = TestDatabases::create().await;

    // ---------------------------------------------------------- 1. the catalog
    println!("generating {rows} catalog image rows ({chunk} per statement)…");
    let generating = Instant::now();
    dbs.catalog
        .batch_execute(
            "ALTER TABLE image DROP CONSTRAINT image_pkey, DROP CONSTRAINT image_url_key, \
               DROP CONSTRAINT image_provider_fid_key; \
             DROP INDEX image_provider_idx, image_last_synced_with_source_idx",
        )
        .await
        .unwrap();
    let (mut done, mut seed, mut deleted) = (0i64, 1i64, 0u64);
    while done < rows {
        let n = chunk.min(rows - done);
        insert_narrow_image_rows(&dbs.catalog, "image", n, seed).await;
        deleted += mark_deleted(&dbs.api, "api_deletedimage", n, seed, deleted_every).await;
        done += n;
        seed += 1;
        println!("  {done} rows ({:.0}s)", generating.elapsed().as_secs_f64());
        disk.check(&admin, "while generating").await;
    }
    dbs.catalog
        .batch_execute("ALTER TABLE image ADD CONSTRAINT image_pkey PRIMARY KEY (identifier)")
        .await
        .unwrap();
    // Separate calls: VACUUM refuses to run inside a multi-statement string.
    dbs.catalog
        .batch_execute("VACUUM ANALYZE image")
        .await
        .unwrap();
    dbs.api
        .batch_execute("VACUUM ANALYZE api_deletedimage")
        .await
        .unwrap();
    let catalog_table = one_i64(&dbs.catalog, "SELECT pg_table_size('image')").await;
    let catalog_total = one_i64(&dbs.catalog, "SELECT pg_total_relation_size('image')").await;
    let avg_row = dbs
        .catalog
        .query_one("SELECT avg(pg_column_size(t.*))::float8 FROM image t", &[])
        .await
        .unwrap()
        .get::<_, f64>(0);
    let generate_s = generating.elapsed().as_secs_f64();
    println!(
        "catalog: {rows} rows, table {:.2} GB ({:.0} B/row on disk, {avg_row:.0} B/row of data), \
         with its key {:.2} GB; {deleted} deleted; {generate_s:.0}s",
        catalog_table as f64 / 1e9,
        catalog_table as f64 / rows as f64,
        catalog_total as f64 / 1e9
    );
    disk.check(&admin, "after generating").await;

    // ---------------------------------------------------------- 2. the copy
    let t = dbs.catalog_target();
    let fdw = CatalogFdw {
        host: t.host,
        port: t.port,
        dbname: t.dbname,
        user: t.user,
        password: SecretString::from(t.password.unwrap_or_default()),
    };
    let request = CopyRequest {
        defer_finish: true,
        batch_size,
        // One session: the batch times below are one session's, in key order.
        sessions: 1,
        ..CopyRequest::new(MediaType::Image, Environment::Production, None)
    };
    println!(
        "copying (batches of {batch_size}, {} s per call as the Lambda)…",
        request.time_budget.as_secs()
    );
    let io_before = catalog_io(&dbs.catalog).await;
    let (progress, calls, copy_s) = copy_to_done(&mut dbs.api, &mut [], &fdw, &request, || {
        clock.call_started()
    })
    .await;
    assert!(progress.finish_deferred);
    let marks = clock.marks.lock().unwrap().clone();
    let batches = batches(&marks);
    assert_eq!(
        batches.iter().map(|b| b.scanned).sum::<u64>(),
        progress.rows_scanned
    );
    assert_eq!(
        batches.iter().map(|b| b.inserted).sum::<u64>(),
        progress.rows_copied
    );
    assert_eq!(
        progress.rows_scanned, rows as u64,
        "the copy read every row"
    );
    assert_eq!(
        progress.rows_copied,
        rows as u64 - deleted,
        "deleted rows skipped"
    );
    let temp_table = one_i64(&dbs.api, "SELECT pg_table_size('temp_import_image')").await;
    // The FDW's session on the catalog has ended (its server was dropped): its block counts
    // are flushed within a second.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let io_after = catalog_io(&dbs.catalog).await;
    let io: Vec<i64> = io_after
        .iter()
        .zip(&io_before)
        .map(|(a, b)| a - b)
        .collect();
    let heap_pages = one_i64(
        &dbs.catalog,
        "SELECT relpages::bigint FROM pg_class WHERE relname = 'image'",
    )
    .await;
    let catalog_reads = json!({
        "what": "pg_statio_user_tables of the catalog's image table over the copy: block accesses (shared-buffer hits + reads from the OS)",
        "heap_blocks_hit": io[0],
        "heap_blocks_read": io[1],
        "index_blocks_hit": io[2],
        "index_blocks_read": io[3],
        "heap_blocks_per_row": round((io[0] + io[1]) as f64 / rows as f64, 3),
        "heap_pages": heap_pages,
        "rows_per_heap_page": round(rows as f64 / heap_pages.max(1) as f64, 1),
        "note": "heap block accesses per row read: about 1 means every row is fetched from its own page (the copy reads in identifier order, rows lie in the heap in insertion order); reads are from the OS page cache or disk",
    });
    println!("catalog block accesses during the copy: {catalog_reads}");
    let first = part(&batches, 0.0, 0.1, batch_size);
    let middle = part(&batches, 0.45, 0.55, batch_size);
    let last = part(&batches, 0.9, 1.0 + f64::EPSILON, batch_size);
    let ratio = match (
        first["median_batch_s"].as_f64(),
        last["median_batch_s"].as_f64(),
    ) {
        (Some(f), Some(l)) if f > 0.0 => Some(round(l / f, 3)),
        _ => None,
    };
    let copy_rows_per_s = progress.rows_scanned as f64 / copy_s;
    println!(
        "copy: {} rows read, {} copied in {copy_s:.1}s ({} call(s), {} batches): {copy_rows_per_s:.0} rows/s; \
         median batch first / middle / last tenth: {} / {} / {} s, last / first {}",
        progress.rows_scanned,
        progress.rows_copied,
        calls.len(),
        batches.len(),
        first["median_batch_s"],
        middle["median_batch_s"],
        last["median_batch_s"],
        ratio.map_or("n/a".into(), |r| r.to_string())
    );
    disk.check(&admin, "after the copy").await;

    // The same copy over the pipeline's sessions (COPY_SESSIONS: one key lane each), into a
    // fresh temp table (the first one is dropped): what splitting the key space buys here.
    let sessions: usize = env_or("BENCH_COPY_SESSIONS", DEFAULT_SESSIONS).clamp(2, MAX_SESSIONS);
    let mut more_sessions = Vec::with_capacity(sessions - 1);
    for _ in 1..sessions {
        more_sessions.push(testkit::connect(&dbs.api_url).await);
    }
    let request_sessions = CopyRequest {
        sessions,
        ..request.clone()
    };
    println!("copying again over {sessions} sessions…");
    let (progress_sessions, session_calls, sessions_s) = copy_to_done(
        &mut dbs.api,
        &mut more_sessions,
        &fdw,
        &request_sessions,
        || {},
    )
    .await;
    drop(more_sessions);
    assert_eq!(progress_sessions.rows_scanned, progress.rows_scanned);
    assert_eq!(progress_sessions.rows_copied, progress.rows_copied);
    let sessions_rows_per_s = progress_sessions.rows_scanned as f64 / sessions_s;
    let sessions_speedup = round(copy_s / sessions_s, 2);
    println!(
        "copy over {sessions} sessions: {sessions_s:.1}s ({} call(s)): {sessions_rows_per_s:.0} rows/s, {sessions_speedup}× one session",
        session_calls.len()
    );
    disk.check(&admin, "after the copy over sessions").await;

    // The worker's finish_copy job: the primary key.
    let safeguards = SessionSafeguards::default();
    let job = connect_job_session(&dbs.api_url, &safeguards)
        .await
        .unwrap();
    let keying = Instant::now();
    let finished = finish_copy_job(
        &job,
        None,
        MediaType::Image,
        &JobProgress::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let primary_key_s = keying.elapsed().as_secs_f64();
    assert!(finished.primary_key_added);
    drop(job);
    println!("primary key (finish_copy job): {primary_key_s:.1}s");

    // The catalog rows are not needed any more: give their disk back before the builds.
    dbs.catalog.batch_execute("DROP TABLE image").await.unwrap();
    let _ = dbs.catalog.batch_execute("CHECKPOINT").await;
    disk.check(&admin, "after dropping the catalog rows").await;

    // ---------------------------------------------------------- 3. step 8's index builds
    let mut timings: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut shapes = BTreeMap::new();
    let mut statements = 0;
    let mut order = Vec::new();
    for run in 0..index_runs {
        // A B, B A, A B, …: neither mode always runs on the warmer cache.
        let pair = if run % 2 == 0 {
            [1, parallelism]
        } else {
            [parallelism, 1]
        };
        for n in pair {
            reset_temp_indexes(&dbs.api).await;
            let progress = JobProgress::default();
            let building = Instant::now();
            let report = reapply_constraints_on(
                &dbs.api_url,
                &safeguards,
                MediaType::Image,
                &ReapplyOptions {
                    parallelism: n,
                    deadline: None,
                    wait_for_other_builds: true,
                },
                &progress,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
            let seconds = building.elapsed().as_secs_f64();
            assert!(report.done && report.analyzed);
            statements = progress.snapshot().done;
            println!(
                "index builds, run {run}, parallelism {n}: {seconds:.1}s ({statements} statements)"
            );
            timings.entry(n).or_default().push(round(seconds, 2));
            order.push(n);
            let shape = temp_indexes(&dbs.api).await;
            assert!(shape.values().all(|(_, valid)| *valid), "{shape:?}");
            shapes.insert(n, shape);
            disk.check(&admin, "after an index run").await;
        }
    }
    assert_eq!(
        shapes.get(&1),
        shapes.get(&parallelism),
        "both modes must build the same indexes"
    );
    let sequential_s = median(&timings[&1]).unwrap();
    let parallel_s = median(&timings[&parallelism]).unwrap();
    let temp_total = one_i64(
        &dbs.api,
        "SELECT pg_total_relation_size('temp_import_image')",
    )
    .await;
    let temp_indexes_bytes = one_i64(&dbs.api, "SELECT pg_indexes_size('temp_import_image')").await;

    // ---------------------------------------------------------- 4. promotion
    let promoting = Instant::now();
    let promoted = promote_table(&mut dbs.api, MediaType::Image).await.unwrap();
    let promote_s = promoting.elapsed().as_secs_f64();
    assert!(promoted.promoted);
    let validating = Instant::now();
    let validated = validate_foreign_keys(
        &dbs.api,
        MediaType::Image,
        &JobProgress::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let validate_s = validating.elapsed().as_secs_f64();
    assert_eq!(validated.failed, 0);
    println!(
        "promotion: promote_table {promote_s:.2}s ({} rows), validate_foreign_keys {validate_s:.2}s",
        promoted.rows
    );

    let server = json!({
        "server_version": setting(&dbs.api, "server_version").await,
        "shared_buffers": setting(&dbs.api, "shared_buffers").await,
        "work_mem": setting(&dbs.api, "work_mem").await,
        "maintenance_work_mem": setting(&dbs.api, "maintenance_work_mem").await,
        "max_parallel_maintenance_workers": setting(&dbs.api, "max_parallel_maintenance_workers").await,
        "max_wal_size": setting(&dbs.api, "max_wal_size").await,
        "synchronous_commit": setting(&dbs.api, "synchronous_commit").await,
        "fsync": setting(&dbs.api, "fsync").await,
        "effective_io_concurrency": setting(&dbs.api, "effective_io_concurrency").await,
    });
    dbs.drop_all().await;
    disk.check(&admin, "after dropping the databases").await;

    let batch_list: Vec<Value> = batches
        .iter()
        .map(|b| {
            json!([
                round(b.position, 4),
                b.scanned,
                b.inserted,
                round(b.seconds, 3),
                b.first_of_call
            ])
        })
        .collect();
    let result = json!({
        "benchmark": "copy_scale",
        "rows": rows,
        "copy_rows": progress.rows_scanned,
        "copy_rows_per_s": round(copy_rows_per_s, 0),
        "copy_batch_last_over_first": ratio,
        "copy_sessions": sessions,
        "copy_sessions_rows_per_s": round(sessions_rows_per_s, 0),
        "copy_sessions_speedup": sessions_speedup,
        "index_builds_sequential_s": round(sequential_s, 2),
        "index_builds_parallel_s": round(parallel_s, 2),
        "catalog": {
            "generator": "testkit::insert_narrow_image_rows (testkit's image rows without the ~5 KB description of every 11th row)",
            "indexes": "primary key (identifier) only: the catalog's other 4 indexes take no part in the copy's reads",
            "table_bytes": catalog_table,
            "total_bytes": catalog_total,
            "table_gb": gb(catalog_table),
            "total_gb": gb(catalog_total),
            "bytes_per_row_on_disk": round(catalog_table as f64 / rows as f64, 1),
            "avg_row_bytes": round(avg_row, 1),
            "deleted_rows": deleted,
            "generate_s": round(generate_s, 1),
        },
        "copy": {
            "what": "copy_data calls as the state machine makes them (production, tags filtered in the SELECT, defer_finish, 600 s time budget per call) until done, over one session (the batch times are one session's, in key order)",
            "rows_read": progress.rows_scanned,
            "rows_copied": progress.rows_copied,
            "seconds": round(copy_s, 2),
            "rows_per_s": round(copy_rows_per_s, 0),
            "copied_rows_per_s": round(progress.rows_copied as f64 / copy_s, 0),
            "catalog_mb_per_s": round(catalog_table as f64 / 1e6 / copy_s, 1),
            "calls": calls,
            "batch_size": batch_size,
            "batches": batches.len(),
            "first_tenth": first,
            "middle_tenth": middle,
            "last_tenth": last,
            "last_over_first": ratio,
            "last_over_first_target": 1.3,
            "last_over_first_met": ratio.map(|r| r <= 1.3),
            "median_batch_s_all": median(&batches.iter().filter(|b| b.scanned as f64 >= 0.9 * batch_size as f64).map(|b| b.seconds).collect::<Vec<_>>()).map(|x| round(x, 3)),
            "batch_columns": ["position", "rows_read", "rows_copied", "seconds", "first_of_call"],
            "batch_list": batch_list,
            "catalog_reads": catalog_reads,
            "temp_table_bytes": temp_table,
            "temp_table_gb": gb(temp_table),
        },
        "copy_over_sessions": {
            "what": "the same copy_data calls over several sessions (COPY_SESSIONS, one key lane each), run after the one-session copy above into a fresh temp table; the primary key and the index builds below run on this table",
            "sessions": sessions,
            "seconds": round(sessions_s, 2),
            "rows_per_s": round(sessions_rows_per_s, 0),
            "speedup_over_one_session": sessions_speedup,
            "calls": session_calls,
            "note": "one run each, one session first; both databases share this machine's cores, and a session already keeps a backend busy on each side",
        },
        "primary_key": {
            "what": "finish_copy_job (the worker's job): ALTER TABLE temp_import_image ADD PRIMARY KEY (id)",
            "seconds": round(primary_key_s, 2),
        },
        "index_builds": {
            "what": "reapply_constraints_on (the worker's reapply job): 13 index builds + 3 unique constraints attached + ANALYZE",
            "parallelism": parallelism,
            "runs_each": index_runs,
            "order": order,
            "statements": statements,
            "sequential_s": round(sequential_s, 2),
            "parallel_s": round(parallel_s, 2),
            "speedup": round(sequential_s / parallel_s, 2),
            "sequential_runs_s": timings[&1],
            "parallel_runs_s": timings[&parallelism],
            "temp_total_bytes": temp_total,
            "temp_indexes_bytes": temp_indexes_bytes,
            "temp_total_gb": gb(temp_total),
        },
        "promotion": {
            "promote_table_s": round(promote_s, 3),
            "validate_foreign_keys_s": round(validate_s, 3),
            "note": "api_imagedecision is empty here: validation scans the referencing table, whose size does not follow the image table's",
        },
        "server": server,
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "load_average_at_start": load_at_start,
            "load_1min_at_each_phase": disk.load.iter().map(|(when, load)| json!([when, load])).collect::<Vec<_>>(),
        },
        "disk": {
            "free_gb_at_start": free_at_start.map(|b| round(b as f64 / 1e9, 1)),
            "lowest_free_gb": disk.lowest.map(|b| round(b as f64 / 1e9, 1)),
            "min_free_gb": min_free_gb,
        },
        "note": "catalog and API databases in one local PostgreSQL cluster (loopback postgres_fdw); the catalog rows and both databases are dropped by the run",
        "commit": commit(),
        "bench_seconds": round(started.elapsed().as_secs_f64(), 0),
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    let text = serde_json::to_string_pretty(&result).unwrap() + "\n";
    if let Some(dir) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&out, text).unwrap();
    println!("written to {out}");
}
