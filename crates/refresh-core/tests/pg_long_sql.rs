//! The long SQL jobs (`pg::job`) against a real PostgreSQL (TEST_PG_URL): step 8 with parallel
//! index builds on job sessions, cancellation, repair of what an interrupted run leaves, the
//! copy's deferred finish, and the referencing foreign keys promotion re-creates NOT VALID.

use refresh_core::environment::Environment;
use refresh_core::error::ErrorKind;
use refresh_core::media::MediaType;
use refresh_core::pg::copy::{copy_data, finish_copy_job, CopyCursor, CopyRequest};
use refresh_core::pg::job::{CancellationToken, JobProgress, SessionSafeguards};
use refresh_core::pg::promote::{
    promote_table, reapply_constraints_on, temp_name, validate_foreign_keys, ReapplyAction,
    ReapplyOptions, ReapplyReport,
};
use refresh_core::settings::{CatalogFdw, SecretString};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::{insert_audio_rows, insert_image_rows, Client, TestDatabases};

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Index name → (uniqueness and what follows `USING` in its definition, valid) of `table`,
/// straight from the catalog.
async fn indexes(client: &Client, table: &str) -> BTreeMap<String, (String, bool)> {
    client
        .query(
            "SELECT c.relname::text,
                    x.indisunique::text || ' ' || regexp_replace(pg_get_indexdef(c.oid), '^.* USING ', ''),
                    x.indisvalid
               FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
              WHERE x.indrelid = to_regclass($1)",
            &[&table],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

/// Constraint name → definition (with validation state) of `table`.
async fn constraints(client: &Client, table: &str) -> BTreeMap<String, String> {
    client
        .query(
            "SELECT conname::text, contype::text || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated::text
               FROM pg_constraint WHERE conrelid = to_regclass($1)",
            &[&table],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Temp table as the copy leaves it: LIKE the live table, `rows` generated rows, primary key.
async fn temp_table(api: &Client, rows: i64) {
    api.batch_execute(
        "CREATE TABLE temp_import_image (LIKE image INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
    )
    .await
    .unwrap();
    insert_image_rows(api, "temp_import_image", rows, 9).await;
    api.batch_execute("ALTER TABLE temp_import_image ADD PRIMARY KEY (id)")
        .await
        .unwrap();
}

async fn reapply(
    dbs: &TestDatabases,
    parallelism: usize,
    progress: &JobProgress,
    cancel: &CancellationToken,
) -> Result<ReapplyReport, refresh_core::error::StepError> {
    let options = ReapplyOptions {
        parallelism,
        deadline: None,
        wait_for_other_builds: true,
    };
    reapply_constraints_on(
        &dbs.api_url,
        &SessionSafeguards::default(),
        MediaType::Image,
        &options,
        progress,
        cancel,
    )
    .await
}

/// Every live index exists on the temp table under its temp name, valid, with the live
/// definition.
async fn assert_complete(api: &Client) {
    let live = indexes(api, "image").await;
    let temp = indexes(api, "temp_import_image").await;
    assert_eq!(temp.len(), live.len(), "{temp:?}");
    for (name, (definition, _)) in &live {
        let wanted = temp_name(name);
        let Some((temp_definition, valid)) = temp.get(&wanted) else {
            panic!("{wanted} missing on the temp table: {temp:?}")
        };
        assert!(*valid, "{wanted} is not valid");
        assert_eq!(temp_definition, definition, "{wanted}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_builds_make_the_same_indexes_as_sequential_ones() {
    let mut shapes = Vec::new();
    let mut reports = Vec::new();
    for parallelism in [1, 4] {
        let dbs = TestDatabases::create().await;
        temp_table(&dbs.api, 3_000).await;
        let progress = JobProgress::default();
        let report = reapply(&dbs, parallelism, &progress, &CancellationToken::new())
            .await
            .unwrap();
        assert!(report.done && report.analyzed, "{report:?}");
        assert_complete(&dbs.api).await;
        // Every planned statement ran (13 builds, 3 constraints attached, 1 rename, ANALYZE).
        let snapshot = progress.snapshot();
        assert_eq!(
            (snapshot.total, snapshot.done, snapshot.failed),
            (18, 18, 0)
        );
        assert!(snapshot.running.is_empty());
        // None of the job's sessions outlives it (their backends exit once closed).
        let sql = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' \
               AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            dbs.api_db
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(&dbs.api, &sql).await > 0 {
            assert!(Instant::now() < deadline, "job sessions left open");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shapes.push((
            indexes(&dbs.api, "temp_import_image").await,
            constraints(&dbs.api, "temp_import_image").await,
        ));
        reports.push(report);
        dbs.drop_all().await;
    }
    assert_eq!(shapes[0], shapes[1], "N=4 built another set than N=1");
    assert_eq!(reports[0], reports[1]);
    let pkey = &reports[1]
        .indexes
        .iter()
        .find(|i| i.live_name == "image_pkey");
    assert!(
        matches!(pkey, Some(i) if matches!(i.action, ReapplyAction::Renamed { .. })),
        "{pkey:?}"
    );
    assert_eq!(
        reports[1]
            .indexes
            .iter()
            .filter(|i| i.action == ReapplyAction::Created)
            .count(),
        13
    );
}

/// A build that runs ~`rows` × 50 ms: an index on a function that sleeps, and says it is
/// immutable (PostgreSQL takes its word). Created on the empty live table.
async fn slow_live_index(api: &Client) {
    api.batch_execute(
        "CREATE FUNCTION slow_id(integer) RETURNS integer IMMUTABLE LANGUAGE plpgsql
           AS $$ BEGIN PERFORM pg_sleep(0.05); RETURN $1; END $$;
         CREATE INDEX image_slow_idx ON image (slow_id(id));",
    )
    .await
    .unwrap();
}

/// Backends of `db` (other than the caller's) running a CREATE INDEX now.
async fn builds_running(api: &Client, db: &str) -> i64 {
    api.query_one(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = $1 AND pid <> pg_backend_pid() AND state = 'active'
            AND query ILIKE 'CREATE%INDEX%'",
        &[&db],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_leaves_no_build_running_and_a_rerun_completes() {
    let dbs = Arc::new(TestDatabases::create().await);
    slow_live_index(&dbs.api).await;
    temp_table(&dbs.api, 1200).await; // ~60 s for the slow index
    let progress = Arc::new(JobProgress::default());
    let cancel = CancellationToken::new();
    let job = {
        let (dbs, progress, cancel) = (dbs.clone(), progress.clone(), cancel.clone());
        tokio::spawn(async move { reapply(&dbs, 3, &progress, &cancel).await })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !progress
        .snapshot()
        .running
        .iter()
        .any(|r| r.what.contains("image_slow_idx_tmp"))
    {
        assert!(Instant::now() < deadline, "the slow build never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(builds_running(&dbs.api, &dbs.api_db).await >= 1);
    let cancelled_at = Instant::now();
    cancel.cancel();
    let err = job.await.unwrap().unwrap_err();
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(10),
        "cancelling took {:?}",
        cancelled_at.elapsed()
    );
    assert_eq!(err.kind, ErrorKind::TransientDatabase, "{}", err.message);
    assert!(
        err.message.starts_with("cancelled while"),
        "{}",
        err.message
    );
    // The client sees the error before the backend reports itself idle: allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while builds_running(&dbs.api, &dbs.api_db).await > 0 {
        assert!(
            Instant::now() < deadline,
            "a build still runs after the cancel"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(progress.snapshot().running.is_empty());
    // The cancelled build left nothing behind: no index of that name, valid or not.
    assert!(!indexes(&dbs.api, "temp_import_image")
        .await
        .contains_key("image_slow_idx_tmp"));

    // The rerun need not spend a minute on the slow index.
    dbs.api
        .batch_execute("DROP INDEX image_slow_idx")
        .await
        .unwrap();
    let rerun = reapply(&dbs, 3, &JobProgress::default(), &CancellationToken::new())
        .await
        .unwrap();
    assert!(rerun.done);
    assert_complete(&dbs.api).await;
    // What the first run finished is kept, not built again.
    assert!(
        rerun
            .indexes
            .iter()
            .filter(|i| i.action == ReapplyAction::Present)
            .count()
            >= 1,
        "{rerun:?}"
    );
    Arc::try_unwrap(dbs)
        .unwrap_or_else(|_| panic!("the job still holds the databases"))
        .drop_all()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_index_is_rebuilt_and_a_bare_unique_index_gets_its_constraint() {
    let dbs = TestDatabases::create().await;
    temp_table(&dbs.api, 500).await;
    let never = CancellationToken::new();
    reapply(&dbs, 2, &JobProgress::default(), &never)
        .await
        .unwrap();
    // What killed builds and jobs leave: an INVALID index (as CREATE INDEX CONCURRENTLY
    // does), and a unique index whose constraint was never attached.
    dbs.api
        .batch_execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'image_provider_idx_tmp'::regclass;
             ALTER TABLE temp_import_image DROP CONSTRAINT image_identifier_key_tmp;
             CREATE UNIQUE INDEX image_identifier_key_tmp ON temp_import_image USING btree (identifier);",
        )
        .await
        .unwrap();
    assert!(!indexes(&dbs.api, "temp_import_image").await["image_provider_idx_tmp"].1);

    let repaired = reapply(&dbs, 2, &JobProgress::default(), &never)
        .await
        .unwrap();
    let action = |name: &str| {
        repaired
            .indexes
            .iter()
            .find(|i| i.live_name == name)
            .map(|i| i.action.clone())
    };
    assert_eq!(action("image_provider_idx"), Some(ReapplyAction::Replaced));
    assert_eq!(
        action("image_identifier_key"),
        Some(ReapplyAction::Attached)
    );
    assert_eq!(action("image_source_idx"), Some(ReapplyAction::Present));
    assert_eq!(repaired.dropped, vec!["image_provider_idx_tmp".to_string()]);
    assert_complete(&dbs.api).await;
    assert_eq!(
        constraints(&dbs.api, "temp_import_image").await["image_identifier_key_tmp"],
        "u UNIQUE (identifier) true"
    );
    // Nothing left to do: every index is present.
    let again = reapply(&dbs, 2, &JobProgress::default(), &never)
        .await
        .unwrap();
    assert!(again
        .indexes
        .iter()
        .all(|i| i.action == ReapplyAction::Present));
    dbs.drop_all().await;
}

fn fdw(dbs: &TestDatabases) -> CatalogFdw {
    let target = dbs.catalog_target();
    CatalogFdw {
        host: target.host,
        port: target.port,
        dbname: target.dbname,
        user: target.user,
        password: SecretString::from(target.password.unwrap_or_default()),
    }
}

async fn copy_deferred(api: &mut Client, fdw: &CatalogFdw, media: MediaType) {
    let mut request = CopyRequest::new(media, Environment::Production, None);
    request.defer_finish = true;
    let mut cursor: Option<CopyCursor> = None;
    for _ in 0..100 {
        let progress = copy_data(api, &mut [], fdw, &request, cursor.as_ref())
            .await
            .unwrap();
        if progress.done {
            assert!(progress.finish_deferred);
            return;
        }
        cursor = progress.cursor;
    }
    panic!("copy never finished");
}

async fn primary_keys(api: &Client, table: &str) -> i64 {
    api.query_one(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p'",
        &[&table],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_finish_is_done_by_the_finish_copy_job() {
    let mut dbs = TestDatabases::create().await;
    let fdw = fdw(&dbs);
    insert_audio_rows(&dbs.catalog, "audio", 120, 5).await;
    dbs.api
        .batch_execute("INSERT INTO audioset (foreign_identifier, provider, title) VALUES ('stale', 'jamendo', 'gone')")
        .await
        .unwrap();
    copy_deferred(&mut dbs.api, &fdw, MediaType::Audio).await;
    // The copy left both for the job.
    assert_eq!(primary_keys(&dbs.api, "temp_import_audio").await, 0);
    assert_eq!(
        count(
            &dbs.api,
            "SELECT count(*) FROM audioset WHERE foreign_identifier = 'stale'"
        )
        .await,
        1
    );
    let never = CancellationToken::new();

    // Without the catalog's FDW settings the audioset copy cannot run: a configuration error.
    let err = finish_copy_job(
        &dbs.api,
        None,
        MediaType::Audio,
        &JobProgress::default(),
        &never,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Configuration, "{}", err.message);

    let progress = JobProgress::default();
    let report = finish_copy_job(&dbs.api, Some(&fdw), MediaType::Audio, &progress, &never)
        .await
        .unwrap();
    // The key was added by the failed call already (it comes first); the audioset now.
    assert!(!report.primary_key_added);
    assert_eq!(primary_keys(&dbs.api, "temp_import_audio").await, 1);
    let view_rows = count(&dbs.catalog, "SELECT count(*) FROM audioset_view").await;
    assert!(view_rows > 0);
    assert_eq!(report.audioset_rows, Some(view_rows as u64));
    assert_eq!(
        count(&dbs.api, "SELECT count(*) FROM audioset").await,
        view_rows
    );
    let snapshot = progress.snapshot();
    assert_eq!((snapshot.total, snapshot.done), (2, 2));
    // The FDW server (and the catalog password in its user mapping) is gone again.
    assert_eq!(
        count(
            &dbs.api,
            "SELECT count(*) FROM pg_foreign_server WHERE srvname = 'upstream_audio'"
        )
        .await,
        0
    );
    dbs.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_copy_adds_the_primary_key_once_and_refuses_an_unfinished_copy() {
    let mut dbs = TestDatabases::create().await;
    let fdw = fdw(&dbs);
    insert_image_rows(&dbs.catalog, "image", 80, 6).await;
    let never = CancellationToken::new();
    let err = finish_copy_job(
        &dbs.api,
        Some(&fdw),
        MediaType::Image,
        &JobProgress::default(),
        &never,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState);
    assert!(err.message.contains("does not exist"), "{}", err.message);

    copy_deferred(&mut dbs.api, &fdw, MediaType::Image).await;
    assert_eq!(primary_keys(&dbs.api, "temp_import_image").await, 0);
    let first = finish_copy_job(
        &dbs.api,
        None,
        MediaType::Image,
        &JobProgress::default(),
        &never,
    )
    .await
    .unwrap();
    assert!(first.primary_key_added);
    assert_eq!(first.audioset_rows, None);
    let again = finish_copy_job(
        &dbs.api,
        None,
        MediaType::Image,
        &JobProgress::default(),
        &never,
    )
    .await
    .unwrap();
    assert!(!again.primary_key_added);
    assert_eq!(primary_keys(&dbs.api, "temp_import_image").await, 1);
    dbs.drop_all().await;
}

/// `(table, name) -> (definition, validated)` of the foreign keys that reference `image`.
async fn foreign_keys_to_image(api: &Client) -> BTreeMap<(String, String), (String, bool)> {
    api.query(
        "SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid), convalidated
           FROM pg_constraint WHERE contype = 'f' AND confrelid = 'image'::regclass",
        &[],
    )
    .await
    .unwrap()
    .into_iter()
    .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_are_not_valid_after_the_swap_and_validated_by_the_job() {
    let mut dbs = TestDatabases::create().await;
    let api = &mut dbs.api;
    // Live: 100 rows with a decision and a report each; the temp table keeps the first 70.
    insert_image_rows(api, "image", 100, 7).await;
    api.batch_execute(
        "CREATE TABLE api_imagereport (id serial PRIMARY KEY, media_obj_id uuid NOT NULL
             CONSTRAINT api_imagereport_media_fk REFERENCES image (identifier));
         INSERT INTO api_imagedecision (action, media_obj_id) SELECT 'x', identifier FROM image;
         INSERT INTO api_imagereport (media_obj_id) SELECT identifier FROM image;
         CREATE TABLE temp_import_image (LIKE image INCLUDING DEFAULTS INCLUDING CONSTRAINTS);",
    )
    .await
    .unwrap();
    insert_image_rows(api, "temp_import_image", 70, 7).await;
    api.batch_execute("ALTER TABLE temp_import_image ADD PRIMARY KEY (id)")
        .await
        .unwrap();
    let before = foreign_keys_to_image(api).await;
    assert_eq!(before.len(), 2);
    assert!(before.values().all(|(_, valid)| *valid));
    let never = CancellationToken::new();
    reapply(&dbs, 2, &JobProgress::default(), &never)
        .await
        .unwrap();

    let api = &mut dbs.api;
    let promoted = promote_table(api, MediaType::Image).await.unwrap();
    assert_eq!(promoted.foreign_keys_repointed, 2);
    assert_eq!(promoted.foreign_keys_not_valid, 2);
    assert_eq!(
        promoted.orphans_deleted, 0,
        "no scan inside the transaction"
    );
    assert!(promoted.foreign_keys.iter().all(|fk| !fk.validated));
    let after_swap = foreign_keys_to_image(api).await;
    for (key, (definition, valid)) in &after_swap {
        assert!(!valid, "{key:?} is validated right after the swap");
        assert_eq!(
            definition,
            &format!("{} NOT VALID", before[key].0),
            "{key:?}"
        );
    }
    // The orphans are still there, and new rows are checked already.
    assert_eq!(
        count(api, "SELECT count(*) FROM api_imagedecision").await,
        100
    );
    assert!(api
        .batch_execute("INSERT INTO api_imagereport (media_obj_id) VALUES ('00000000-0000-0000-0000-000000000000')")
        .await
        .is_err());

    // Deleting the reports fails (a trigger stands in for any error): that key stays NOT
    // VALID and is reported; the other is validated; the promotion stands.
    api.batch_execute(
        "CREATE FUNCTION keep_reports() RETURNS trigger LANGUAGE plpgsql
           AS $$ BEGIN RAISE EXCEPTION 'reports are kept'; END $$;
         CREATE TRIGGER keep_reports BEFORE DELETE ON api_imagereport
           FOR EACH ROW EXECUTE FUNCTION keep_reports();",
    )
    .await
    .unwrap();
    let progress = JobProgress::default();
    let report = validate_foreign_keys(api, MediaType::Image, &progress, &never)
        .await
        .unwrap();
    assert_eq!((report.validated, report.failed), (1, 1), "{report:?}");
    assert_eq!(report.orphans_deleted, 30);
    let failed = report.foreign_keys.iter().find(|f| !f.validated).unwrap();
    assert_eq!(failed.name, "api_imagereport_media_fk");
    let error = failed.error.as_deref().unwrap();
    assert!(
        error.contains("P0001") && error.contains("reports are kept"),
        "{error}"
    );
    let summary = report.failure_summary().unwrap();
    assert!(summary.contains("api_imagereport_media_fk"), "{summary}");
    let state = foreign_keys_to_image(api).await;
    assert!(
        state[&(
            "api_imagedecision".to_string(),
            "api_imagedecision_media_obj_id_fk_image_identifier".to_string()
        )]
            .1
    );
    assert!(
        !state[&(
            "api_imagereport".to_string(),
            "api_imagereport_media_fk".to_string()
        )]
            .1
    );
    assert_eq!(count(api, "SELECT count(*) FROM image").await, 70);
    assert_eq!(
        count(api, "SELECT count(*) FROM api_imagedecision").await,
        70
    );

    // Fixed, the job runs again: the valid key is left alone, the other validated.
    api.batch_execute("DROP TRIGGER keep_reports ON api_imagereport")
        .await
        .unwrap();
    let rerun = validate_foreign_keys(api, MediaType::Image, &JobProgress::default(), &never)
        .await
        .unwrap();
    assert_eq!((rerun.validated, rerun.failed), (2, 0), "{rerun:?}");
    assert_eq!(
        rerun
            .foreign_keys
            .iter()
            .filter(|f| f.already_valid)
            .count(),
        1
    );
    assert_eq!(rerun.orphans_deleted, 30);
    assert_eq!(foreign_keys_to_image(api).await, before);
    assert_eq!(progress.snapshot().failed, 1);
    dbs.drop_all().await;
}
