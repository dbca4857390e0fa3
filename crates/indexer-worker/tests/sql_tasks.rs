//! SQL tasks through the real worker binary's HTTP API, against a real PostgreSQL
//! (`TEST_PG_URL`): step 8 with parallel index builds, the foreign-key validation after
//! promotion, and what a killed, cancelled or stopped worker leaves in the database (nothing
//! running; a rerun finishes).

mod common;

use std::time::{Duration, Instant};

use common::Worker;
use refresh_core::media::MediaType;
use refresh_core::pg::promote::promote_table;
use serde_json::{json, Value};
use testkit::{insert_image_rows, Client, TestDatabases};

const TASK_LIMIT: Duration = Duration::from_secs(300);

fn sql_task(job: &str, extra: Value) -> Value {
    let mut body = json!({"kind": "sql", "job": job, "media_type": "image"});
    if let Value::Object(fields) = extra {
        body.as_object_mut().unwrap().extend(fields);
    }
    body
}

async fn start(worker: &Worker, body: &Value) -> String {
    let (status, answer) = worker.post_task(body).await;
    assert_eq!(status, 202, "POST /task {body}: {answer}");
    answer["task_id"].as_str().unwrap().to_string()
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Backends of `db` other than the caller's that are running a CREATE INDEX.
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

/// Client sessions of `db` other than the caller's.
async fn other_sessions(api: &Client, db: &str) -> i64 {
    api.query_one(
        "SELECT count(*) FROM pg_stat_activity
          WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
        &[&db],
    )
    .await
    .unwrap()
    .get(0)
}

/// Waits until `check` is true, failing with `what` after `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// Polls the task until a statement whose description contains `needle` runs.
async fn wait_until_running(worker: &Worker, task: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = worker.status(task).await;
        let running = status["running"].as_array().unwrap();
        if running
            .iter()
            .any(|r| r["what"].as_str().unwrap().contains(needle))
        {
            return;
        }
        assert_eq!(
            status["active"], true,
            "ended before {needle} ran: {status}"
        );
        assert!(Instant::now() < deadline, "{needle} never ran: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The temp table's indexes: (count, how many are valid).
async fn temp_indexes(api: &Client) -> (i64, i64) {
    let row = api
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE indisvalid) FROM pg_index
              WHERE indrelid = 'temp_import_image'::regclass",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// Every live index exists on the temp table under its temp name, valid.
async fn assert_temp_complete(api: &Client) {
    let missing = count(
        api,
        "SELECT count(*) FROM pg_indexes l WHERE l.tablename = 'image' AND NOT EXISTS (
           SELECT 1 FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
            WHERE x.indrelid = 'temp_import_image'::regclass AND x.indisvalid
              AND c.relname = l.indexname || '_tmp')",
    )
    .await;
    assert_eq!(missing, 0, "live indexes missing on the temp table");
    let live = count(
        api,
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'image'",
    )
    .await;
    assert_eq!(temp_indexes(api).await, (live, live));
}

/// A temp table as the copy leaves it: LIKE the live table, `rows` generated rows, primary key.
async fn temp_table(api: &Client, rows: i64, seed: i64) {
    api.batch_execute(
        "CREATE TABLE temp_import_image (LIKE image INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
    )
    .await
    .unwrap();
    insert_image_rows(api, "temp_import_image", rows, seed).await;
    api.batch_execute("ALTER TABLE temp_import_image ADD PRIMARY KEY (id)")
        .await
        .unwrap();
}

/// A live index whose build on the temp table takes `rows` × 50 ms: on a function that
/// sleeps and claims to be immutable (PostgreSQL takes its word). The live table stays empty.
async fn slow_fixture(rows: i64) -> TestDatabases {
    let dbs = TestDatabases::create().await;
    dbs.api
        .batch_execute(
            "CREATE FUNCTION slow_id(integer) RETURNS integer IMMUTABLE LANGUAGE plpgsql
               AS $$ BEGIN PERFORM pg_sleep(0.05); RETURN $1; END $$;
             CREATE INDEX image_slow_idx ON image (slow_id(id));",
        )
        .await
        .unwrap();
    temp_table(&dbs.api, rows, 3).await;
    dbs
}

/// Before a rerun: the slow index has served its purpose (being killed midway), and the rerun
/// need not spend a minute on it.
async fn drop_slow_index(api: &Client) {
    api.batch_execute("DROP INDEX image_slow_idx")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reapply_builds_every_index_valid_and_validation_follows_promotion() {
    let mut dbs = TestDatabases::create().await;
    // Live: 300 rows, a moderation decision for each; the new table keeps 250 of them.
    insert_image_rows(&dbs.api, "image", 300, 21).await;
    dbs.api
        .batch_execute(
            "INSERT INTO api_imagedecision (action, media_obj_id) SELECT 'x', identifier FROM image",
        )
        .await
        .unwrap();
    temp_table(&dbs.api, 250, 21).await;
    let worker = Worker::start(
        &dbs.api_url,
        &testkit::es_url(),
        &["--sql-parallelism", "4"],
    )
    .await;

    let task = start(&worker, &sql_task("reapply", json!({}))).await;
    let done = worker.wait(&task, TASK_LIMIT).await;
    assert_eq!(done["error"], Value::Null, "{done}");
    assert_eq!(done["kind"], "sql");
    assert_eq!(done["job"], "reapply");
    assert_eq!(done["table_name"], "temp_import_image");
    assert_eq!(done["parallelism"], 4, "the worker's default");
    // 13 builds, 3 unique constraints attached, the copy's key renamed, ANALYZE.
    assert_eq!(done["statements_total"], 18, "{done}");
    assert_eq!(done["statements_done"], 18, "{done}");
    assert_eq!(done["statements_failed"], 0);
    assert_eq!(done["running"], json!([]));
    assert!(done["finish_time"].is_string());
    assert_eq!(done["result"]["done"], true);
    assert_eq!(done["result"]["analyzed"], true);
    assert_eq!(done["result"]["indexes"].as_array().unwrap().len(), 14);
    assert_temp_complete(&dbs.api).await;
    // GET /task lists it with its kind.
    let list = worker.tasks().await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["task_id"], task.as_str());
    assert_eq!(list[0]["kind"], "sql");

    // The same job again: nothing to build, every index already there.
    let again = start(&worker, &sql_task("reapply", json!({"parallelism": 2}))).await;
    let again = worker.wait(&again, TASK_LIMIT).await;
    assert_eq!(again["error"], Value::Null, "{again}");
    assert!(again["result"]["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["action"] == "present"));

    // Promotion (a Lambda step) re-creates the referencing key NOT VALID ...
    let promoted = promote_table(&mut dbs.api, MediaType::Image).await.unwrap();
    assert_eq!(promoted.foreign_keys_not_valid, 1);
    let not_valid = "SELECT count(*) FROM pg_constraint WHERE contype = 'f'
                       AND confrelid = 'image'::regclass AND NOT convalidated";
    assert_eq!(count(&dbs.api, not_valid).await, 1);
    // ... and the worker's job deletes the orphans and validates it.
    let task = start(&worker, &sql_task("validate_foreign_keys", json!({}))).await;
    let validated = worker.wait(&task, TASK_LIMIT).await;
    assert_eq!(validated["error"], Value::Null, "{validated}");
    assert_eq!(validated["table_name"], "image");
    assert_eq!(validated["result"]["validated"], 1);
    assert_eq!(validated["result"]["failed"], 0);
    assert_eq!(validated["result"]["orphans_deleted"], 50);
    assert_eq!(validated["statements_done"], 2);
    assert_eq!(count(&dbs.api, not_valid).await, 0);
    assert_eq!(
        count(&dbs.api, "SELECT count(*) FROM api_imagedecision").await,
        250
    );
    worker.stop().await;
    dbs.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_leaves_no_build_running_and_a_fresh_worker_finishes() {
    let dbs = slow_fixture(1200).await; // the slow build alone: ~60 s
    let worker = Worker::start(
        &dbs.api_url,
        &testkit::es_url(),
        &["--sql-client-check-secs", "1"],
    )
    .await;
    let task = start(&worker, &sql_task("reapply", json!({"parallelism": 3}))).await;
    wait_until_running(&worker, &task, "image_slow_idx_tmp").await;
    assert!(builds_running(&dbs.api, &dbs.api_db).await >= 1);

    // kill -9: no cancel request, no goodbye; the kernel closes the sockets.
    worker.stop().await;
    let took = eventually(
        Duration::from_secs(15),
        "the killed worker's build ends",
        || async { builds_running(&dbs.api, &dbs.api_db).await == 0 },
    )
    .await;
    eprintln!("the killed worker's build ended {took:?} after the kill");
    eventually(
        Duration::from_secs(15),
        "the killed worker's sessions end",
        || async { other_sessions(&dbs.api, &dbs.api_db).await == 0 },
    )
    .await;
    // Its build was rolled back: no index of that name, valid or not.
    assert_eq!(
        count(
            &dbs.api,
            "SELECT count(*) FROM pg_class WHERE relname = 'image_slow_idx_tmp'"
        )
        .await,
        0
    );

    drop_slow_index(&dbs.api).await;
    let fresh = Worker::start(&dbs.api_url, &testkit::es_url(), &[]).await;
    let rerun = start(&fresh, &sql_task("reapply", json!({"parallelism": 3}))).await;
    let done = fresh.wait(&rerun, TASK_LIMIT).await;
    assert_eq!(done["error"], Value::Null, "{done}");
    let actions: Vec<&str> = done["result"]["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    // The killed run's finished builds are kept; the unique indexes it built get the
    // constraints it never reached (or, killed mid-build, are built again).
    assert!(
        actions.contains(&"present")
            && (actions.contains(&"attached") || actions.contains(&"created")),
        "{actions:?}"
    );
    assert_temp_complete(&dbs.api).await;
    fresh.stop().await;
    dbs.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_or_stopped_task_cancels_its_statements() {
    let dbs = slow_fixture(1200).await; // ~60 s
    let mut worker = Worker::start(&dbs.api_url, &testkit::es_url(), &[]).await;

    // DELETE /task/{id}: the statement is cancelled on the server at once.
    let task = start(&worker, &sql_task("reapply", json!({"parallelism": 2}))).await;
    wait_until_running(&worker, &task, "image_slow_idx_tmp").await;
    let r = worker
        .authed(worker.http.delete(format!("{}/task/{task}", worker.base)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let cancelled = worker.wait(&task, Duration::from_secs(10)).await;
    let error = cancelled["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("task cancelled: cancelled while building"),
        "{cancelled}"
    );
    assert_eq!(cancelled["running"], json!([]));
    eventually(
        Duration::from_secs(5),
        "the cancelled build ends",
        || async { builds_running(&dbs.api, &dbs.api_db).await == 0 },
    )
    .await;
    // A finished task is left alone; an unknown one is a 404.
    let r = worker
        .authed(worker.http.delete(format!("{}/task/{task}", worker.base)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = worker
        .authed(worker.http.delete(format!("{}/task/0123abcd", worker.base)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // SIGTERM: the worker cancels its statements and exits cleanly.
    let task = start(&worker, &sql_task("reapply", json!({"parallelism": 2}))).await;
    wait_until_running(&worker, &task, "image_slow_idx_tmp").await;
    let stopped = Instant::now();
    worker.signal("TERM").await;
    assert_eq!(worker.exited(Duration::from_secs(30)).await, Some(0));
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopped.elapsed()
    );
    eventually(Duration::from_secs(5), "the stopped build ends", || async {
        builds_running(&dbs.api, &dbs.api_db).await == 0
    })
    .await;
    let logs = worker.logs.lock().await.join("\n");
    assert!(
        logs.contains("worker shut down: cancelled while building"),
        "{logs}"
    );
    assert!(!logs.contains(&dbs.api_url), "the database URL was logged");

    drop_slow_index(&dbs.api).await;
    let fresh = Worker::start(&dbs.api_url, &testkit::es_url(), &[]).await;
    let rerun = start(&fresh, &sql_task("reapply", json!({}))).await;
    let done = fresh.wait(&rerun, TASK_LIMIT).await;
    assert_eq!(done["error"], Value::Null, "{done}");
    assert_temp_complete(&dbs.api).await;
    fresh.stop().await;
    dbs.drop_all().await;
}

/// A worker runs one task at a time, whatever its kind; the same SQL task posted again is the
/// running one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_task_at_a_time_across_kinds() {
    let dbs = slow_fixture(200).await;
    let worker = Worker::start(&dbs.api_url, &testkit::es_url(), &[]).await;
    let body = sql_task("reapply", json!({"parallelism": 2}));
    let task = start(&worker, &body).await;
    let (status, again) = worker.post_task(&body).await;
    assert_eq!(status, 202);
    assert_eq!(
        again["task_id"],
        task.as_str(),
        "a retried POST reuses the task"
    );
    let (status, busy) = worker
        .post_task(&sql_task("validate_foreign_keys", json!({})))
        .await;
    assert_eq!(status, 409, "{busy}");
    assert!(busy["message"].as_str().unwrap().contains(&task), "{busy}");
    let done = worker.wait(&task, TASK_LIMIT).await;
    assert_eq!(done["error"], Value::Null, "{done}");
    worker.stop().await;
    dbs.drop_all().await;
}
