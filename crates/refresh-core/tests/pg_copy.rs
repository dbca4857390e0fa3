//! `copy_data` against the real PostgreSQL (two fresh databases per test, via testkit).

use refresh_core::environment::Environment;
use refresh_core::error::ErrorKind;
use refresh_core::media::MediaType;
use refresh_core::pg::copy::{copy_data, remote_batch_sql, CopyCursor, CopyProgress, CopyRequest};
use refresh_core::pg::fdw::{create_fdw, drop_fdw, shared_columns};
use refresh_core::pg::key_window::KeyWindow;
use refresh_core::settings::{CatalogFdw, SecretString};
use refresh_core::tags::TagFilterConfig;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use testkit::{insert_audio_rows, insert_image_rows, mark_deleted, TestDatabases};
use tokio_postgres::Client;
use uuid::Uuid;

/// url, title, meta_data, removed_from_source, standardized_popularity
type ImageColumns = (String, Option<String>, Option<String>, bool, Option<f64>);
/// duration, alt_files, audio_set_foreign_identifier
type AudioColumns = (Option<i32>, Option<String>, Option<String>);

/// Quotes and a backslash: the user mapping's literal must survive them (trust auth locally
/// ignores the value itself).
const NASTY_PASSWORD: &str = r"pa'ss\word'';--";

fn fdw(dbs: &TestDatabases) -> CatalogFdw {
    let t = dbs.catalog_target();
    CatalogFdw {
        host: t.host,
        port: t.port,
        dbname: t.dbname,
        user: t.user,
        password: SecretString::from(NASTY_PASSWORD.to_string()),
    }
}

fn request(
    media: MediaType,
    environment: Environment,
    row_limit: Option<u64>,
    batch: u64,
) -> CopyRequest {
    CopyRequest {
        batch_size: batch,
        // Zero budget: one batch per call, finishing in its own call, so every path runs.
        time_budget: Duration::ZERO,
        ..CopyRequest::new(media, environment, row_limit)
    }
}

async fn run_to_done(
    api: &mut Client,
    fdw: &CatalogFdw,
    req: &CopyRequest,
) -> (CopyProgress, usize) {
    let mut cursor: Option<CopyCursor> = None;
    for calls in 1..200 {
        let progress = copy_data(api, &mut [], fdw, req, cursor.as_ref())
            .await
            .unwrap();
        assert_fdw_gone(api).await;
        if progress.done {
            return (progress, calls);
        }
        cursor = progress.cursor.clone();
        assert!(cursor.is_some());
    }
    panic!("copy never finished");
}

async fn assert_fdw_gone(api: &Client) {
    let row = api
        .query_one(
            "SELECT (SELECT count(*) FROM pg_foreign_server),
                    (SELECT count(*) FROM pg_user_mappings),
                    (SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'upstream%'),
                    (SELECT count(*) FROM pg_foreign_table)",
            &[],
        )
        .await
        .unwrap();
    for k in 0..4 {
        assert_eq!(row.get::<_, i64>(k), 0, "FDW object kind {k} left behind");
    }
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn tags_by_identifier(client: &Client, table: &str) -> BTreeMap<Uuid, Option<Value>> {
    client
        .query(&format!("SELECT identifier, tags FROM {table}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

async fn deleted_identifiers(api: &Client, table: &str) -> HashSet<Uuid> {
    identifiers(api, &format!("SELECT identifier FROM {table}"))
        .await
        .into_iter()
        .collect()
}

#[tokio::test]
async fn image_copy_takes_shared_columns_skips_deleted_filters_tags_and_cleans_up() {
    let mut dbs = TestDatabases::create().await;
    let fdw = fdw(&dbs);
    assert_eq!(insert_image_rows(&dbs.catalog, "image", 600, 1).await, 600);
    let deleted = mark_deleted(&dbs.api, "api_deletedimage", 600, 1, 7).await as i64;
    // A deleted row that the catalog does not have must not matter.
    dbs.api
        .execute(
            "INSERT INTO api_deletedimage (identifier) VALUES (gen_random_uuid())",
            &[],
        )
        .await
        .unwrap();
    // The live table has rows and ids of its own; the temp table must not continue them.
    insert_image_rows(&dbs.api, "image", 20, 99).await;

    let req = request(MediaType::Image, Environment::Staging, None, 64);
    let (progress, calls) = run_to_done(&mut dbs.api, &fdw, &req).await;
    assert!(calls > 5, "expected several calls, got {calls}");
    let expected_rows = 600 - deleted;
    assert_eq!(progress.rows_scanned, 600);
    assert_eq!(progress.rows_copied as i64, expected_rows);
    let api = &dbs.api;
    assert_eq!(
        count(api, "SELECT count(*) FROM temp_import_image").await,
        expected_rows
    );

    // Deleted rows skipped.
    assert_eq!(
        count(
            api,
            "SELECT count(*) FROM temp_import_image t JOIN api_deletedimage d USING (identifier)"
        )
        .await,
        0
    );
    // Fresh, unique ids from the temp table's own sequence; primary key present.
    let row = api
        .query_one(
            "SELECT min(id), max(id), count(DISTINCT id), count(id) FROM temp_import_image",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    assert_eq!(row.get::<_, i32>(1) as i64, expected_rows);
    assert_eq!(row.get::<_, i64>(2), expected_rows);
    assert_eq!(row.get::<_, i64>(3), expected_rows);
    assert_eq!(
        count(
            api,
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'temp_import_image'::regclass AND contype = 'p'"
        )
        .await,
        1
    );
    let default: String = api
        .query_one(
            "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef \
             WHERE adrelid = 'temp_import_image'::regclass AND adnum = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(default.contains("temp_import_image_id_seq"), "{default}");

    // Shared columns carry the catalog's values; API-only columns get their defaults.
    let catalog_rows: BTreeMap<Uuid, ImageColumns> = dbs
        .catalog
        .query("SELECT identifier, url, title, meta_data::text, removed_from_source, standardized_popularity FROM image", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))))
        .collect();
    let temp_rows = api
        .query(
            "SELECT identifier, url, title, meta_data::text, removed_from_source, standardized_popularity, view_count \
             FROM temp_import_image",
            &[],
        )
        .await
        .unwrap();
    for r in &temp_rows {
        let id: Uuid = r.get(0);
        let expected = &catalog_rows[&id];
        assert_eq!(
            &(r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)),
            expected
        );
        assert_eq!(
            r.get::<_, Option<i32>>(6),
            Some(0),
            "view_count takes the API default"
        );
    }

    // Tags are exactly what the Rust reference leaves.
    let filter = TagFilterConfig::default();
    let catalog_tags = tags_by_identifier(&dbs.catalog, "image").await;
    let temp_tags = tags_by_identifier(api, "temp_import_image").await;
    let mut changed = 0;
    for (id, tags) in &temp_tags {
        let original = &catalog_tags[id];
        let expected = filter.filter(original.as_ref());
        assert_eq!(tags, &expected, "tags of {id}");
        changed += usize::from(tags != original);
    }
    assert!(
        changed > temp_tags.len() / 2,
        "the generator's tags should mostly need filtering"
    );

    // The live table is untouched.
    assert_eq!(count(api, "SELECT count(*) FROM image").await, 20);
    dbs.drop_all().await;
}

#[tokio::test]
async fn row_limit_applies_outside_production_only() {
    let mut dbs = TestDatabases::create().await;
    let fdw = fdw(&dbs);
    insert_image_rows(&dbs.catalog, "image", 300, 2).await;
    mark_deleted(&dbs.api, "api_deletedimage", 300, 2, 5).await;
    let deleted = deleted_identifiers(&dbs.api, "api_deletedimage").await;

    let staging = request(MediaType::Image, Environment::Staging, Some(100), 64);
    let (progress, _) = run_to_done(&mut dbs.api, &fdw, &staging).await;
    assert_eq!(progress.rows_copied, 100);
    // The first 100 non-deleted rows in identifier order.
    let expected: Vec<Uuid> = identifiers(
        &dbs.catalog,
        "SELECT identifier FROM image ORDER BY identifier",
    )
    .await
    .into_iter()
    .filter(|id| !deleted.contains(id))
    .take(100)
    .collect();
    let got = identifiers(
        &dbs.api,
        "SELECT identifier FROM temp_import_image ORDER BY identifier",
    )
    .await;
    assert_eq!(got, expected);

    // A limit equal to a batch boundary.
    let staging = request(MediaType::Image, Environment::Staging, Some(64), 64);
    let (progress, _) = run_to_done(&mut dbs.api, &fdw, &staging).await;
    assert_eq!(progress.rows_copied, 64);
    assert_eq!(
        count(&dbs.api, "SELECT count(*) FROM temp_import_image").await,
        64
    );

    let production = request(MediaType::Image, Environment::Production, Some(100), 64);
    let (progress, _) = run_to_done(&mut dbs.api, &fdw, &production).await;
    assert_eq!(progress.rows_copied, 300 - 60);
    assert_eq!(
        count(&dbs.api, "SELECT count(*) FROM temp_import_image").await,
        240
    );
    dbs.drop_all().await;
}

#[tokio::test]
async fn failed_batch_drops_the_fdw_server_and_a_retry_copies_each_row_once() {
    let mut dbs = TestDatabases::create().await;
    let fdw = fdw(&dbs);
    insert_image_rows(&dbs.catalog, "image", 400, 4).await;
    let req = request(MediaType::Image, Environment::Staging, None, 50);

    // Good calls until some rows are committed (one batch per call; the first identifier
    // windows are narrow and widen, so how many rows each call takes varies).
    let mut second = copy_data(&mut dbs.api, &mut [], &fdw, &req, None)
        .await
        .unwrap();
    while second.rows_copied < 50 {
        assert!(!second.done);
        second = copy_data(&mut dbs.api, &mut [], &fdw, &req, second.cursor.as_ref())
            .await
            .unwrap();
    }
    assert!(second.rows_copied < 400, "{}", second.rows_copied);
    let committed = second.rows_copied as i64;

    // Inject a failure: every later batch holds a row this constraint rejects.
    dbs.api
        .batch_execute("ALTER TABLE temp_import_image ADD CONSTRAINT injected CHECK (filesize IS NULL OR filesize < 200000) NOT VALID")
        .await
        .unwrap();
    let err = copy_data(&mut dbs.api, &mut [], &fdw, &req, second.cursor.as_ref())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal, "{}", err.message);
    assert!(err.message.contains("23514"), "{}", err.message);
    assert!(
        !err.message.contains("word"),
        "password leaked: {}",
        err.message
    );
    assert_fdw_gone(&dbs.api).await;
    assert_eq!(
        count(&dbs.api, "SELECT count(*) FROM temp_import_image").await,
        committed,
        "failed call left rows"
    );

    // Fixed and retried with the same cursor; then a retry of an already committed call
    // (a lost response) must not copy its rows again.
    dbs.api
        .batch_execute("ALTER TABLE temp_import_image DROP CONSTRAINT injected")
        .await
        .unwrap();
    let third = copy_data(&mut dbs.api, &mut [], &fdw, &req, second.cursor.as_ref())
        .await
        .unwrap();
    assert!(third.rows_copied > second.rows_copied);
    let replay = copy_data(&mut dbs.api, &mut [], &fdw, &req, second.cursor.as_ref())
        .await
        .unwrap();
    assert!(
        replay.rows_copied > third.rows_copied,
        "a replayed call resumes from the committed position"
    );
    assert_eq!(
        count(
            &dbs.api,
            "SELECT count(DISTINCT identifier) FROM temp_import_image"
        )
        .await,
        replay.rows_copied as i64,
        "a replayed call copied rows again"
    );
    let mut cursor = replay.cursor;
    loop {
        let p = copy_data(&mut dbs.api, &mut [], &fdw, &req, cursor.as_ref())
            .await
            .unwrap();
        if p.done {
            break;
        }
        cursor = p.cursor;
    }
    assert_eq!(
        count(&dbs.api, "SELECT count(*) FROM temp_import_image").await,
        400
    );
    assert_eq!(
        count(
            &dbs.api,
            "SELECT count(DISTINCT identifier) FROM temp_import_image"
        )
        .await,
        400
    );
    assert_fdw_gone(&dbs.api).await;

    // A cursor without a temp table is refused, naming the table.
    dbs.api
        .batch_execute("DROP TABLE temp_import_image")
        .await
        .unwrap();
    let err = copy_data(&mut dbs.api, &mut [], &fdw, &req, cursor.as_ref())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState);
    assert!(err.message.contains("temp_import_image"), "{}", err.message);
    assert_fdw_gone(&dbs.api).await;
    dbs.drop_all().await;
}

#[tokio::test]
async fn unreachable_catalog_fails_cleanly() {
    let mut dbs = TestDatabases::create().await;
    let mut fdw = fdw(&dbs);
    fdw.dbname = "no_such_database_here".into();
    let req = request(MediaType::Image, Environment::Staging, None, 50);
    let err = copy_data(&mut dbs.api, &mut [], &fdw, &req, None)
        .await
        .unwrap_err();
    // The FDW cannot open its connection: SQLSTATE 08001 (class 08, so retried), reported
    // with the step that needed it and the server's reason (which names the database).
    assert_eq!(err.kind, ErrorKind::TransientDatabase, "{}", err.message);
    assert!(
        err.message
            .starts_with("importing the catalog tables over FDW: PostgreSQL error 08001: "),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("no_such_database_here"),
        "the reason names the missing database: {}",
        err.message
    );
    assert!(
        !err.message.contains("word"),
        "password leaked: {}",
        err.message
    );
    assert_fdw_gone(&dbs.api).await;
    dbs.drop_all().await;
}

#[tokio::test]
async fn audio_copy_replaces_audioset_and_keeps_audio_columns() {
    let mut dbs = TestDatabases::create().await;
    let fdw = fdw(&dbs);
    insert_audio_rows(&dbs.catalog, "audio", 300, 3).await;
    mark_deleted(&dbs.api, "api_deletedaudio", 300, 3, 10).await;
    dbs.api
        .batch_execute("INSERT INTO audioset (foreign_identifier, provider, title) VALUES ('stale', 'jamendo', 'gone')")
        .await
        .unwrap();

    let req = request(MediaType::Audio, Environment::Staging, None, 1000);
    let (progress, calls) = run_to_done(&mut dbs.api, &fdw, &req).await;
    // Batches as the identifier windows widen over the 300 rows, then finishing in its own
    // call (zero budget).
    assert!(calls >= 2, "{calls} calls");
    assert_eq!(progress.rows_copied, 270);

    let api = &dbs.api;
    let view_rows = count(&dbs.catalog, "SELECT count(*) FROM audioset_view").await;
    assert!(view_rows > 0);
    assert_eq!(count(api, "SELECT count(*) FROM audioset").await, view_rows);
    assert_eq!(
        count(
            api,
            "SELECT count(*) FROM audioset WHERE foreign_identifier = 'stale'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            api,
            "SELECT count(*) FROM audioset WHERE created_on IS NULL OR url IS NULL"
        )
        .await,
        0
    );

    let catalog: BTreeMap<Uuid, AudioColumns> = dbs
        .catalog
        .query(
            "SELECT identifier, duration, alt_files::text, audio_set_foreign_identifier FROM audio",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    for r in api
        .query("SELECT identifier, duration, alt_files::text, audio_set_foreign_identifier FROM temp_import_audio", &[])
        .await
        .unwrap()
    {
        assert_eq!(catalog[&r.get::<_, Uuid>(0)], (r.get(1), r.get(2), r.get(3)));
    }
    assert_eq!(
        count(api, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'temp_import_audio'::regclass AND contype = 'p'").await,
        1
    );
    assert_eq!(
        count(api, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'temp_import_audio' AND column_name IN ('audio_set', 'ingestion_type')").await,
        0
    );
    // The next refresh replaces the same sets again (same unique keys) without a clash.
    dbs.api
        .batch_execute("DROP TABLE temp_import_audio")
        .await
        .unwrap();
    run_to_done(&mut dbs.api, &fdw, &req).await;
    assert_eq!(
        count(&dbs.api, "SELECT count(*) FROM audioset").await,
        view_rows
    );
    dbs.drop_all().await;
}

#[tokio::test]
async fn database_errors_are_classified_without_secrets() {
    let dbs = TestDatabases::create().await;
    let url_with_password = dbs
        .api_url
        .replacen("://", "://postgres:sekrit@", 1)
        .replacen("postgres@", "", 1);
    let client = refresh_core::pg::connect::connect(&url_with_password)
        .await
        .unwrap();
    let err: refresh_core::error::StepError =
        client.batch_execute("SELEC 1").await.unwrap_err().into();
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains("42601"), "{}", err.message);
    let err: refresh_core::error::StepError = client
        .batch_execute("SELECT pg_terminate_backend(pg_backend_pid())")
        .await
        .unwrap_err()
        .into();
    assert_eq!(err.kind, ErrorKind::TransientDatabase, "{}", err.message);
    let err: refresh_core::error::StepError =
        client.batch_execute("SELECT 1").await.unwrap_err().into();
    assert_eq!(
        err.kind,
        ErrorKind::TransientDatabase,
        "closed connection: {}",
        err.message
    );
    assert!(!err.message.contains("sekrit"));
    dbs.drop_all().await;
}

/// Every batch is bounded on the catalog itself, whatever the API database's planner does
/// with the `LIMIT`: the remote SQL carries the batch's identifier range (a window the copy
/// learns from the batches before), and the catalog answers it with a range scan of its
/// identifier index that reads about one batch, never the rest of the table; at the start,
/// the middle and the last tenth of the key range.
#[tokio::test]
async fn each_batch_ships_its_key_range_and_the_catalog_reads_an_index_range() {
    let dbs = TestDatabases::create().await;
    let fdw = fdw(&dbs);
    insert_image_rows(&dbs.catalog, "image", 20_000, 3).await;
    dbs.catalog.batch_execute("ANALYZE image").await.unwrap();
    let keys: Vec<Uuid> = dbs
        .catalog
        .query("SELECT identifier FROM image ORDER BY identifier", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();

    create_fdw(&dbs.api, MediaType::Image, &fdw).await.unwrap();
    let columns = shared_columns(&dbs.api, MediaType::Image, "image", "image")
        .await
        .unwrap();
    let sql = remote_batch_sql(MediaType::Image, &columns, false);
    // The width the copy learns: the key span of 1 000 rows.
    let width = keys[1_000].as_u128() - keys[0].as_u128();
    for (place, at) in [("start", 0), ("middle", 10_000), ("last tenth", 18_500)] {
        let window = KeyWindow::after(Some(keys[at]), Some(width));
        let verbose = dbs
            .api
            .query_one(
                &format!("EXPLAIN (VERBOSE, FORMAT JSON) {sql}"),
                &[&window.lower.unwrap(), &window.upper, &1_000_i64],
            )
            .await
            .unwrap();
        let plan: Value = verbose.get(0);
        let remote = find_key(&plan, "Remote SQL").unwrap_or_else(|| panic!("{place}: {plan}"));
        let remote = remote.as_str().unwrap();
        assert!(
            remote.contains("identifier > ") && remote.contains("identifier <= "),
            "{place}: the batch's range is not shipped to the catalog: {remote}"
        );

        // The same SQL on the catalog, with the bounds bound as the API database binds them.
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = if remote.contains("$1") {
            vec![&window.lower, &window.upper]
        } else {
            vec![]
        };
        let explained = dbs
            .catalog
            .query_one(&format!("EXPLAIN (FORMAT JSON) {remote}"), &params)
            .await
            .unwrap();
        let catalog_plan: Value = explained.get(0);
        let text = catalog_plan.to_string();
        assert!(
            [
                "\"Index Scan\"",
                "\"Index Only Scan\"",
                "\"Bitmap Index Scan\""
            ]
            .iter()
            .any(|scan| text.contains(scan)),
            "{place}: the catalog does not read an index range: {catalog_plan}"
        );
        let cond =
            find_key(&catalog_plan, "Index Cond").unwrap_or_else(|| panic!("{catalog_plan}"));
        let cond = cond.as_str().unwrap();
        assert!(
            cond.contains("identifier >") && cond.contains("identifier <="),
            "{place}: {cond}"
        );
        // Whatever the node shapes, the catalog reads about one batch, not the rest of the table.
        let rows = catalog_plan[0]["Plan"]["Plan Rows"].as_f64().unwrap();
        assert!(
            rows <= 4_000.0,
            "{place}: {rows} rows planned: {catalog_plan}"
        );
    }
    drop_fdw(&dbs.api, MediaType::Image).await.unwrap();
    dbs.drop_all().await;
}

fn find_key<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|v| find_key(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find_key(v, key)),
        _ => None,
    }
}

async fn more_sessions(dbs: &TestDatabases, n: usize) -> Vec<Client> {
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        sessions.push(
            refresh_core::pg::connect::connect(&dbs.api_url)
                .await
                .unwrap(),
        );
    }
    sessions
}

async fn identifiers(client: &Client, sql: &str) -> Vec<Uuid> {
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn table_exists(client: &Client, table: &str) -> bool {
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .unwrap()
        .get(0)
}

/// Four sessions copy four key lanes at once: every catalog row that is not deleted arrives
/// once, each lane's share comes from its own identifier range, and the lanes table that held
/// their positions is gone once the copy is done.
#[tokio::test]
async fn a_copy_over_four_sessions_copies_every_row_once() {
    let mut dbs = TestDatabases::create().await;
    let fdw = fdw(&dbs);
    insert_image_rows(&dbs.catalog, "image", 2_000, 11).await;
    mark_deleted(&dbs.api, "api_deletedimage", 2_000, 11, 9).await;
    let deleted = deleted_identifiers(&dbs.api, "api_deletedimage").await;
    let mut sessions = more_sessions(&dbs, 3).await;
    let req = CopyRequest {
        batch_size: 100,
        sessions: 4,
        ..CopyRequest::new(MediaType::Image, Environment::Production, None)
    };

    let first = copy_data(&mut dbs.api, &mut sessions, &fdw, &req, None)
        .await
        .unwrap();
    assert!(
        first.done,
        "a generous budget copies everything in one call"
    );
    let cursor = first.cursor.clone().unwrap();
    assert_eq!((cursor.lanes, cursor.lanes_done), (4, 4));
    assert_fdw_gone(&dbs.api).await;
    assert!(!table_exists(&dbs.api, "temp_import_image_copy_lanes").await);

    let expected: Vec<Uuid> = identifiers(
        &dbs.catalog,
        "SELECT identifier FROM image ORDER BY identifier",
    )
    .await
    .into_iter()
    .filter(|id| !deleted.contains(id))
    .collect();
    let copied = identifiers(
        &dbs.api,
        "SELECT identifier FROM temp_import_image ORDER BY identifier",
    )
    .await;
    assert_eq!(copied, expected);
    assert_eq!(first.rows_copied as usize, expected.len());
    assert_eq!(first.rows_scanned, 2_000);
    // Ids stay unique and dense whichever lane took them.
    let row = dbs
        .api
        .query_one(
            "SELECT min(id), max(id), count(DISTINCT id) FROM temp_import_image",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    assert_eq!(row.get::<_, i32>(1) as usize, expected.len());
    assert_eq!(row.get::<_, i64>(2) as usize, expected.len());
    // A call after the end reports the same totals and copies nothing.
    let again = copy_data(
        &mut dbs.api,
        &mut sessions,
        &fdw,
        &req,
        first.cursor.as_ref(),
    )
    .await
    .unwrap();
    assert!(again.done);
    assert_eq!(again.rows_copied, first.rows_copied);
    drop(sessions);
    dbs.drop_all().await;
}

/// A lane that fails rolls back only its own batches: the lanes that did not fail commit, the
/// call reports the error, and the retry resumes every lane from what it committed, so each
/// row is copied once.
#[tokio::test]
async fn a_failing_lane_keeps_the_other_lanes_work_and_the_retry_copies_each_row_once() {
    let mut dbs = TestDatabases::create().await;
    let fdw = fdw(&dbs);
    insert_image_rows(&dbs.catalog, "image", 1_200, 12).await;
    let mut sessions = more_sessions(&dbs, 3).await;
    let req = CopyRequest {
        batch_size: 50,
        sessions: 4,
        ..CopyRequest::new(MediaType::Image, Environment::Production, None)
    };
    // The first call creates the table and copies a batch in each lane; then the upper half
    // of the key space (lanes 2 and 3) is refused.
    let budget_zero = CopyRequest {
        time_budget: Duration::ZERO,
        ..req.clone()
    };
    let started = copy_data(&mut dbs.api, &mut sessions, &fdw, &budget_zero, None)
        .await
        .unwrap();
    assert!(!started.done);
    let upper = "SELECT count(*) FROM temp_import_image WHERE identifier >= '80000000-0000-0000-0000-000000000000'";
    let upper_before = count(&dbs.api, upper).await;
    dbs.api
        .batch_execute(
            "ALTER TABLE temp_import_image ADD CONSTRAINT lower_half_only \
             CHECK (identifier < '80000000-0000-0000-0000-000000000000') NOT VALID",
        )
        .await
        .unwrap();
    let err = copy_data(
        &mut dbs.api,
        &mut sessions,
        &fdw,
        &req,
        started.cursor.as_ref(),
    )
    .await
    .unwrap_err();
    assert!(err.message.contains("23514"), "{}", err.message);
    assert_fdw_gone(&dbs.api).await;
    let catalog_lower = count(
        &dbs.catalog,
        "SELECT count(*) FROM image WHERE identifier < '80000000-0000-0000-0000-000000000000'",
    )
    .await;
    // The lower lanes finished; the upper ones kept only what the first call committed.
    assert_eq!(count(&dbs.api, upper).await, upper_before);
    assert_eq!(
        count(
            &dbs.api,
            "SELECT count(*) FROM temp_import_image WHERE identifier < '80000000-0000-0000-0000-000000000000'"
        )
        .await,
        catalog_lower
    );
    assert!(table_exists(&dbs.api, "temp_import_image_copy_lanes").await);

    dbs.api
        .batch_execute("ALTER TABLE temp_import_image DROP CONSTRAINT lower_half_only")
        .await
        .unwrap();
    let mut progress = copy_data(
        &mut dbs.api,
        &mut sessions,
        &fdw,
        &req,
        started.cursor.as_ref(),
    )
    .await
    .unwrap();
    while !progress.done {
        progress = copy_data(
            &mut dbs.api,
            &mut sessions,
            &fdw,
            &req,
            progress.cursor.as_ref(),
        )
        .await
        .unwrap();
    }
    assert_eq!(progress.rows_copied, 1_200);
    assert_eq!(
        count(
            &dbs.api,
            "SELECT count(DISTINCT identifier) FROM temp_import_image"
        )
        .await,
        1_200
    );
    assert_eq!(
        count(&dbs.api, "SELECT count(*) FROM temp_import_image").await,
        1_200
    );
    assert!(!table_exists(&dbs.api, "temp_import_image_copy_lanes").await);
    drop(sessions);
    dbs.drop_all().await;
}
