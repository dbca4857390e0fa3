//! Benchmark (not a test): the copy step and the tag filter on `BENCH_ROWS` generated catalog
//! image rows (default 100 000), `BENCH_ROUNDS` alternating rounds (3). `benches/run` runs
//! it; `BENCH_OUT` names the JSON file (stdout only without it). Needs `TEST_PG_URL`.
//!
//! Each round, over the same catalog rows and the same FDW as the pipeline (`copy_data`):
//! - copy with the tag filter inside its `SELECT` (what the pipeline does), and the same copy
//!   without the filter: what filtering inside the copy adds;
//! - a bare `INSERT … SELECT` of the shared columns over the same FDW server, plus the same
//!   primary key: what the copy's batching, deleted-rows check and bookkeeping cost;
//! - on the unfiltered copy: the standalone set-based pass (`refilter_tags`), and the replaced
//!   system's method (one `UPDATE` per changed row, a commit per 100 000-id batch) on an
//!   identical table. Both must give the rows the filtered copy gave.

use refresh_core::environment::Environment;
use refresh_core::media::MediaType;
use refresh_core::pg::connect::pool;
use refresh_core::pg::copy::{copy_data, CopyRequest};
use refresh_core::pg::fdw::{create_fdw, drop_fdw, shared_columns};
use refresh_core::pg::filter::{refilter_tags, RefilterRequest};
use refresh_core::ranges::{batches, IdRange};
use refresh_core::settings::{CatalogFdw, SecretString};
use refresh_core::tags::TagFilterConfig;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use testkit::{insert_image_rows, TestDatabases};
use tokio_postgres::Client;

/// The replaced system committed once per batch of this many ids.
const ROWWISE_BATCH: u64 = 100_000;

async fn shape(api: &Client, table: &str) -> Value {
    let row = api
        .query_one(
            "SELECT table_len, dead_tuple_count FROM pgstattuple($1::text)",
            &[&table],
        )
        .await
        .unwrap();
    json!({"table_mb": row.get::<_, i64>(0) as f64 / 1e6, "dead_tuples": row.get::<_, i64>(1)})
}

/// Keeps the filtered copy's tags as the reference the passes are checked against.
async fn keep_expected(api: &Client) {
    api.batch_execute(
        "DROP TABLE IF EXISTS bench_expected; \
         CREATE TABLE bench_expected AS SELECT identifier, tags FROM temp_import_image",
    )
    .await
    .unwrap();
}

/// Rows whose tags differ from the reference (or that only one side has). jsonb equality, as
/// the set-based pass compares: a client that rewrites a row may print 0.90 as 0.9.
async fn differing_rows(api: &Client) -> i64 {
    api.query_one(
        "SELECT count(*) FROM temp_import_image t FULL JOIN bench_expected e USING (identifier) \
         WHERE t.identifier IS NULL OR e.identifier IS NULL OR t.tags IS DISTINCT FROM e.tags",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// The pipeline's copy, run to the end in one call; seconds.
async fn copy(api: &mut Client, fdw: &CatalogFdw, filter_tags: bool) -> f64 {
    let req = CopyRequest {
        filter_tags,
        time_budget: Duration::from_secs(3600),
        // One session, as the bare `INSERT … SELECT` it is compared with.
        sessions: 1,
        ..CopyRequest::new(MediaType::Image, Environment::Production, None)
    };
    let start = Instant::now();
    let progress = copy_data(api, &mut [], fdw, &req, None).await.unwrap();
    assert!(progress.done);
    start.elapsed().as_secs_f64()
}

/// `INSERT … SELECT` of the shared columns over a fresh FDW server, then the primary key;
/// seconds, FDW set-up and tear-down included as in the copy.
async fn bare_insert_select(api: &Client, fdw: &CatalogFdw) -> f64 {
    api.batch_execute(
        "DROP TABLE IF EXISTS bench_bare; \
         CREATE TABLE bench_bare (LIKE image INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
    )
    .await
    .unwrap();
    let start = Instant::now();
    create_fdw(api, MediaType::Image, fdw).await.unwrap();
    let columns = shared_columns(api, MediaType::Image, "image", "image")
        .await
        .unwrap()
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    api.batch_execute(&format!(
        "INSERT INTO bench_bare ({columns}) SELECT {columns} FROM upstream_image.image; \
         ALTER TABLE bench_bare ADD PRIMARY KEY (id)"
    ))
    .await
    .unwrap();
    drop_fdw(api, MediaType::Image).await.unwrap();
    let seconds = start.elapsed().as_secs_f64();
    api.batch_execute("DROP TABLE bench_bare").await.unwrap();
    seconds
}

/// Puts the unfiltered snapshot back as `temp_import_image` (not timed).
async fn restore_unfiltered(api: &Client) {
    api.batch_execute(
        "DROP TABLE temp_import_image; \
         CREATE TABLE temp_import_image AS TABLE bench_unfiltered; \
         ALTER TABLE temp_import_image ADD PRIMARY KEY (id), SET (autovacuum_enabled = false)",
    )
    .await
    .unwrap();
    // VACUUM refuses to run inside a multi-statement string.
    api.batch_execute("VACUUM ANALYZE temp_import_image")
        .await
        .unwrap();
}

/// The replaced system's pass: per 100 000-id batch, read the rows, filter each row's tags in
/// the client, one `UPDATE` per changed row, commit. (It filtered in Python; the Rust
/// reference filter here only makes the client side faster.) Returns (seconds, rows changed).
async fn rowwise(api: &mut Client, filter: &TagFilterConfig) -> (f64, u64) {
    let start = Instant::now();
    let span = api
        .query_one(
            "SELECT min(id)::bigint, max(id)::bigint FROM temp_import_image",
            &[],
        )
        .await
        .unwrap();
    let span = IdRange {
        start_id: span.get(0),
        end_id: span.get(1),
    };
    let mut changed = 0;
    for batch in batches(span, ROWWISE_BATCH).unwrap() {
        let tx = api.transaction().await.unwrap();
        let update = tx
            .prepare("UPDATE temp_import_image SET tags = $1 WHERE id = $2")
            .await
            .unwrap();
        let rows = tx
            .query(
                "SELECT id, tags FROM temp_import_image WHERE id BETWEEN $1::bigint AND $2::bigint",
                &[&batch.start_id, &batch.end_id],
            )
            .await
            .unwrap();
        for row in rows {
            let id: i32 = row.get(0);
            let tags: Option<Value> = row.get(1);
            let filtered = filter.filter(tags.as_ref());
            if filtered != tags {
                tx.execute(&update, &[&filtered, &id]).await.unwrap();
                changed += 1;
            }
        }
        tx.commit().await.unwrap();
    }
    (start.elapsed().as_secs_f64(), changed)
}

fn summary(values: &[f64]) -> Value {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    json!({"median": median, "min": sorted[0], "max": sorted[n - 1], "runs": values})
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks; nothing to list here.
    }
    let rows: i64 = env_or("BENCH_ROWS", 100_000);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let mut dbs = TestDatabases::create().await;
    dbs.api
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        .await
        .unwrap();
    println!("generating {rows} catalog image rows…");
    let chunk = 200_000;
    let (mut done, mut seed) = (0, 11);
    while done < rows {
        let n = chunk.min(rows - done);
        insert_image_rows(&dbs.catalog, "image", n, seed).await;
        done += n;
        seed += 1;
    }
    dbs.catalog.batch_execute("ANALYZE image").await.unwrap();
    let t = dbs.catalog_target();
    let fdw = CatalogFdw {
        host: t.host,
        port: t.port,
        dbname: t.dbname,
        user: t.user,
        password: SecretString::from(String::new()),
    };
    let filter = TagFilterConfig::default();

    let (mut filtered, mut unfiltered, mut bare, mut set_based, mut row_by_row) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut changed, mut tables) = (0, Value::Null);
    for round in 1..=rounds {
        let a = copy(&mut dbs.api, &fdw, true).await;
        keep_expected(&dbs.api).await;
        let filtered_shape = shape(&dbs.api, "temp_import_image").await;

        let b = copy(&mut dbs.api, &fdw, false).await;
        dbs.api
            .batch_execute(
                "ALTER TABLE temp_import_image SET (autovacuum_enabled = false); \
                 DROP TABLE IF EXISTS bench_unfiltered; \
                 CREATE TABLE bench_unfiltered AS TABLE temp_import_image",
            )
            .await
            .unwrap();
        // VACUUM refuses to run inside a multi-statement string.
        dbs.api
            .batch_execute("VACUUM ANALYZE temp_import_image")
            .await
            .unwrap();

        let pool = pool(&dbs.api_url, 2).unwrap();
        let start = Instant::now();
        let n = refilter_tags(
            &pool,
            &RefilterRequest::new(MediaType::Image, filter.clone()),
        )
        .await
        .unwrap();
        let s = start.elapsed().as_secs_f64();
        pool.close();
        assert_eq!(
            differing_rows(&dbs.api).await,
            0,
            "set-based pass differs from the filtered copy"
        );
        let after_set_based = shape(&dbs.api, "temp_import_image").await;

        restore_unfiltered(&dbs.api).await;
        let (r, n_rowwise) = rowwise(&mut dbs.api, &filter).await;
        assert_eq!(
            differing_rows(&dbs.api).await,
            0,
            "row-by-row pass differs from the filtered copy"
        );
        assert_eq!(n, n_rowwise, "both passes must change the same rows");

        let x = bare_insert_select(&dbs.api, &fdw).await;
        println!(
            "round {round}: copy filtered {a:.2}s, unfiltered {b:.2}s, bare INSERT…SELECT {x:.2}s | \
             set-based {s:.2}s vs row-by-row {r:.2}s ({n} rows changed)"
        );
        filtered.push(a);
        unfiltered.push(b);
        bare.push(x);
        set_based.push(s);
        row_by_row.push(r);
        changed = n;
        tables =
            json!({"filtered_in_copy": filtered_shape, "copied_then_set_based": after_set_based});
    }
    dbs.drop_all().await;

    let result = json!({
        "rows": rows,
        "rounds": rounds,
        "rows_changed_by_filter": changed,
        "copy_filtered_seconds": summary(&filtered),
        "copy_unfiltered_seconds": summary(&unfiltered),
        "bare_insert_select_seconds": summary(&bare),
        "set_based_filter_seconds": summary(&set_based),
        "rowwise_filter_seconds": summary(&row_by_row),
        // pgstattuple right after each step (autovacuum off), from the last round.
        "tables": tables,
        "note": "same PostgreSQL cluster for catalog and API DB (loopback FDW); copies include the primary-key build",
    });
    let text = serde_json::to_string_pretty(&result).unwrap() + "\n";
    match std::env::var("BENCH_OUT").ok().filter(|p| !p.is_empty()) {
        Some(out) => {
            std::fs::write(&out, text).unwrap();
            println!("written to {out}");
        }
        None => println!("{text}"),
    }
}
