//! The standalone set-based tag re-filter against the real PostgreSQL.

use refresh_core::media::MediaType;
use refresh_core::pg::connect::pool;
use refresh_core::pg::filter::{refilter_tags, RefilterRequest};
use refresh_core::tags::TagFilterConfig;
use serde_json::Value;
use std::collections::BTreeMap;
use testkit::{insert_audio_rows, TestDatabases};

async fn tags_by_id(client: &tokio_postgres::Client) -> BTreeMap<i32, Option<Value>> {
    client
        .query("SELECT id, tags FROM temp_import_audio", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn refilter_changes_exactly_the_rows_that_need_it() {
    let dbs = TestDatabases::create().await;
    let api = &dbs.api;
    api.batch_execute(
        "CREATE TABLE temp_import_audio (LIKE audio INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
         ALTER TABLE temp_import_audio ADD PRIMARY KEY (id);",
    )
    .await
    .unwrap();
    insert_audio_rows(api, "temp_import_audio", 1000, 5).await;
    // Gaps in the id span, and an id span that is not a multiple of the batch size.
    api.batch_execute("DELETE FROM temp_import_audio WHERE id % 10 = 3 OR id > 990")
        .await
        .unwrap();

    let before = tags_by_id(api).await;
    let config = TagFilterConfig::default();
    let expected_changes = before
        .values()
        .filter(|t| config.filter(t.as_ref()) != **t)
        .count() as u64;
    assert!(expected_changes > 0 && expected_changes < before.len() as u64);

    let pool = pool(&dbs.api_url, 3).unwrap();
    let jit_setting = |pool: deadpool_postgres::Pool| async move {
        let c = pool.get().await.unwrap();
        c.query_one("SHOW jit", &[])
            .await
            .unwrap()
            .get::<_, String>(0)
    };
    let jit_before = jit_setting(pool.clone()).await;
    let request = RefilterRequest {
        batch_size: 37,
        parallelism: 3,
        ..RefilterRequest::new(MediaType::Audio, config.clone())
    };
    let changed = refilter_tags(&pool, &request).await.unwrap();
    assert_eq!(changed, expected_changes);
    // The pass turns JIT off for its own transactions only.
    assert_eq!(jit_setting(pool.clone()).await, jit_before);

    let after = tags_by_id(api).await;
    assert_eq!(after.len(), before.len());
    for (id, tags) in &after {
        assert_eq!(tags, &config.filter(before[id].as_ref()), "row {id}");
    }
    // Idempotent: nothing left to change, nothing rewritten.
    assert_eq!(refilter_tags(&pool, &request).await.unwrap(), 0);

    // A stricter configuration changes only the rows it now affects.
    let stricter = TagFilterConfig {
        min_accuracy: 0.96,
        ..config.clone()
    };
    let expected = after
        .values()
        .filter(|t| stricter.filter(t.as_ref()) != **t)
        .count() as u64;
    let request = RefilterRequest {
        tag_filter: stricter,
        ..request
    };
    assert_eq!(refilter_tags(&pool, &request).await.unwrap(), expected);
    assert!(expected > 0);

    pool.close();
    dbs.drop_all().await;
}

#[tokio::test]
async fn refilter_of_an_empty_table_changes_nothing() {
    let dbs = TestDatabases::create().await;
    dbs.api
        .batch_execute("CREATE TABLE temp_import_image (LIKE image INCLUDING DEFAULTS)")
        .await
        .unwrap();
    let pool = pool(&dbs.api_url, 2).unwrap();
    let changed = refilter_tags(
        &pool,
        &RefilterRequest::new(MediaType::Image, TagFilterConfig::default()),
    )
    .await
    .unwrap();
    assert_eq!(changed, 0);
    pool.close();
    dbs.drop_all().await;
}
