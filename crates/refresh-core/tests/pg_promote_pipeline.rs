//! The PostgreSQL half of a refresh end to end, on a real cluster (TEST_PG_URL): the real copy
//! step fills the temp table from the catalog, then constraints are reapplied and the table
//! promoted — twice in a row, as weekly refreshes do.

use refresh_core::environment::Environment;
use refresh_core::media::MediaType;
use refresh_core::pg::copy::{copy_data, CopyCursor, CopyRequest};
use refresh_core::pg::counts::{row_count, rows_by_source, table_exists, MediaTable};
use refresh_core::pg::job::{CancellationToken, JobProgress};
use refresh_core::pg::promote::{promote_table, reapply_constraints, validate_foreign_keys};
use refresh_core::settings::{CatalogFdw, SecretString};
use std::collections::BTreeMap;
use testkit::{insert_image_rows, mark_deleted, Client, TestDatabases};

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

async fn copy_all(api: &mut Client, fdw: &CatalogFdw) {
    let request = CopyRequest::new(MediaType::Image, Environment::Production, None);
    let mut cursor: Option<CopyCursor> = None;
    for _ in 0..100 {
        let progress = copy_data(api, &mut [], fdw, &request, cursor.as_ref())
            .await
            .unwrap();
        if progress.done {
            return;
        }
        cursor = progress.cursor;
    }
    panic!("copy never finished");
}

async fn index_and_constraint_names(api: &Client) -> (Vec<String>, Vec<String>) {
    let names = |sql: &'static str| async move {
        api.query(sql, &[])
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    (
        names("SELECT indexname::text FROM pg_indexes WHERE tablename = 'image' ORDER BY 1").await,
        names(
            "SELECT conname::text FROM pg_constraint WHERE conrelid = 'image'::regclass ORDER BY 1",
        )
        .await,
    )
}

#[tokio::test]
async fn copy_reapply_promote_twice() {
    let mut dbs = TestDatabases::create().await;
    let fdw = fdw(&dbs);
    // Live: 100 rows with a decision each. Catalog: 130 rows of which rows 1..=100 are the
    // live ones; every 10th is deleted in the API, so its decision becomes an orphan.
    insert_image_rows(&dbs.api, "image", 100, 42).await;
    dbs.api
        .batch_execute("INSERT INTO api_imagedecision (action, media_obj_id) SELECT 'x', identifier FROM image")
        .await
        .unwrap();
    insert_image_rows(&dbs.catalog, "image", 130, 42).await;
    assert_eq!(
        mark_deleted(&dbs.api, "api_deletedimage", 130, 42, 10).await,
        13
    );
    let names_before = index_and_constraint_names(&dbs.api).await;

    copy_all(&mut dbs.api, &fdw).await;
    assert_eq!(
        row_count(&dbs.api, MediaType::Image, MediaTable::Temp)
            .await
            .unwrap(),
        117
    );
    reapply_constraints(&dbs.api, MediaType::Image)
        .await
        .unwrap();
    let report = promote_table(&mut dbs.api, MediaType::Image).await.unwrap();
    assert_eq!(report.rows, 117);
    assert_eq!(report.foreign_keys_not_valid, 1);
    let validation = validate_foreign_keys(
        &dbs.api,
        MediaType::Image,
        &JobProgress::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!((validation.validated, validation.failed), (1, 0));
    assert_eq!(validation.orphans_deleted, 10);
    assert_eq!(index_and_constraint_names(&dbs.api).await, names_before);
    assert!(!table_exists(&dbs.api, MediaType::Image, MediaTable::Temp)
        .await
        .unwrap());
    let by_source = rows_by_source(&dbs.api, MediaType::Image, MediaTable::Live)
        .await
        .unwrap();
    assert_eq!(by_source.values().sum::<u64>(), 117);
    let catalog_by_source: BTreeMap<String, i64> = dbs
        .catalog
        .query("SELECT source::text, count(*) FROM image GROUP BY 1", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        by_source.keys().collect::<Vec<_>>(),
        catalog_by_source.keys().collect::<Vec<_>>()
    );

    // The next week's refresh runs on the table the first one promoted.
    insert_image_rows(&dbs.catalog, "image", 20, 43).await;
    copy_all(&mut dbs.api, &fdw).await;
    reapply_constraints(&dbs.api, MediaType::Image)
        .await
        .unwrap();
    let second = promote_table(&mut dbs.api, MediaType::Image).await.unwrap();
    assert_eq!(second.rows, 137);
    assert_eq!(second.orphans_deleted, 0);
    let validation = validate_foreign_keys(
        &dbs.api,
        MediaType::Image,
        &JobProgress::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!((validation.validated, validation.orphans_deleted), (1, 0));
    assert_eq!(index_and_constraint_names(&dbs.api).await, names_before);
    let comment: Option<String> = dbs
        .api
        .query_one("SELECT obj_description('image'::regclass, 'pg_class')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        comment, None,
        "the copy's bookkeeping comment leaked onto the live table"
    );
    // ids keep working for the API's own inserts.
    dbs.api
        .batch_execute(
            "INSERT INTO image (created_on, updated_on, identifier, license, removed_from_source)
             VALUES (now(), now(), gen_random_uuid(), 'by', false)",
        )
        .await
        .unwrap();
    dbs.drop_all().await;
}
