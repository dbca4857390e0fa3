//! Benchmark: tags filtered inside the copy's SELECT vs. copied unfiltered and then
//! re-filtered with one set-based UPDATE pass (it checks only that both produce the same
//! rows). Reports wall time, table size and dead tuples to `bench-results/`.
//!
//! Run: `TEST_PG_URL=… cargo bench -p refresh-core --bench tag_filter`
//! (`BENCH_ROWS` sets the catalog size, default 100 000).

use refresh_core::environment::Environment;
use refresh_core::media::MediaType;
use refresh_core::pg::connect::pool;
use refresh_core::pg::copy::{copy_data, CopyRequest};
use refresh_core::pg::filter::{refilter_tags, RefilterRequest};
use refresh_core::settings::{CatalogFdw, SecretString};
use refresh_core::tags::TagFilterConfig;
use std::time::{Duration, Instant};
use testkit::{insert_image_rows, TestDatabases};
use tokio_postgres::Client;

struct Shape {
    table_bytes: i64,
    live: i64,
    dead: i64,
}

async fn shape(api: &Client) -> Shape {
    let row = api
        .query_one(
            "SELECT table_len, tuple_count, dead_tuple_count FROM pgstattuple('temp_import_image')",
            &[],
        )
        .await
        .unwrap();
    Shape {
        table_bytes: row.get(0),
        live: row.get(1),
        dead: row.get(2),
    }
}

async fn copy_all(api: &mut Client, fdw: &CatalogFdw, filter: TagFilterConfig) {
    let req = CopyRequest {
        tag_filter: filter,
        time_budget: Duration::from_secs(3600),
        ..CopyRequest::new(MediaType::Image, Environment::Production, None)
    };
    let progress = copy_data(api, fdw, &req, None).await.unwrap();
    assert!(progress.done);
}

#[tokio::main]
async fn main() {
    let rows: i64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut dbs = TestDatabases::create().await;
    dbs.api
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        .await
        .unwrap();
    insert_image_rows(&dbs.catalog, "image", rows, 11).await;
    let t = dbs.catalog_target();
    let fdw = CatalogFdw {
        host: t.host,
        port: t.port,
        dbname: t.dbname,
        user: t.user,
        password: SecretString::from(String::new()),
    };
    let permissive = TagFilterConfig {
        min_accuracy: 0.0,
        denied_providers: vec![],
        denied_names: vec![],
        denied_substrings: vec![],
    };

    let mut lines = vec![format!(
        "# Tag filter: inside the copy's SELECT vs copy + UPDATE ({rows} catalog image rows)\n"
    )];
    let mut results = Vec::new();
    for run in 0..3 {
        // A: filtered while copying.
        let start = Instant::now();
        copy_all(&mut dbs.api, &fdw, TagFilterConfig::default()).await;
        let a_time = start.elapsed();
        let a = shape(&dbs.api).await;
        let a_checksum: String = dbs
            .api
            .query_one("SELECT md5(string_agg(identifier::text || coalesce(tags::text, '~'), ',' ORDER BY identifier)) FROM temp_import_image", &[])
            .await
            .unwrap()
            .get(0);

        // B: copied (the permissive filter keeps nearly every tag), then re-filtered.
        let start = Instant::now();
        copy_all(&mut dbs.api, &fdw, permissive.clone()).await;
        dbs.api
            .batch_execute("ALTER TABLE temp_import_image SET (autovacuum_enabled = false)")
            .await
            .unwrap();
        let b_copy = start.elapsed();
        let pool = pool(&dbs.api_url, 2).unwrap();
        let start = Instant::now();
        let changed = refilter_tags(
            &pool,
            &RefilterRequest::new(MediaType::Image, TagFilterConfig::default()),
        )
        .await
        .unwrap();
        let b_update = start.elapsed();
        pool.close();
        let b = shape(&dbs.api).await;
        let b_checksum: String = dbs
            .api
            .query_one("SELECT md5(string_agg(identifier::text || coalesce(tags::text, '~'), ',' ORDER BY identifier)) FROM temp_import_image", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            a_checksum, b_checksum,
            "both methods must produce the same rows"
        );
        println!(
            "run {run}: A in-SELECT {:.2}s, {} bytes, {} live, {} dead | B copy {:.2}s + UPDATE {:.2}s ({} rows changed), {} bytes, {} live, {} dead",
            a_time.as_secs_f64(), a.table_bytes, a.live, a.dead,
            b_copy.as_secs_f64(), b_update.as_secs_f64(), changed, b.table_bytes, b.live, b.dead
        );
        results.push((a_time, a, b_copy, b_update, changed, b));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|x, y| x.partial_cmp(y).unwrap());
        v[v.len() / 2]
    };
    let a_med = median(results.iter().map(|r| r.0.as_secs_f64()).collect());
    let b_copy_med = median(results.iter().map(|r| r.2.as_secs_f64()).collect());
    let b_upd_med = median(results.iter().map(|r| r.3.as_secs_f64()).collect());
    let (_, a, _, _, changed, b) = &results[results.len() - 1];
    lines.push(
        "| method | wall time (median of 3) | table size | live tuples | dead tuples |".into(),
    );
    lines.push("|---|---|---|---|---|".into());
    lines.push(format!(
        "| A: filter inside the copy's SELECT | {a_med:.2} s | {:.1} MB | {} | {} |",
        a.table_bytes as f64 / 1e6,
        a.live,
        a.dead
    ));
    lines.push(format!(
        "| B: copy, then set-based UPDATE ({changed} rows changed) | {:.2} s ({b_copy_med:.2} copy + {b_upd_med:.2} update) | {:.1} MB | {} | {} |",
        b_copy_med + b_upd_med, b.table_bytes as f64 / 1e6, b.live, b.dead
    ));
    lines.push(String::new());
    lines.push(
        "Copy includes the primary-key build. Same PostgreSQL cluster for catalog and API DB (loopback FDW). \
         Table size and dead tuples from pgstattuple right after the step, before any vacuum (autovacuum off on the table for B)."
            .into(),
    );
    let text = lines.join("\n") + "\n";
    println!("{text}");
    let dir = testkit::workspace_root().join("bench-results");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("pg_tag_filter.md"), text).unwrap();
    dbs.drop_all().await;
}
