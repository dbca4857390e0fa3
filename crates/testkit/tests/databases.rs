//! The kit against the real cluster at TEST_PG_URL.

use testkit::*;

#[tokio::test]
async fn creates_fills_and_drops_a_database_pair() {
    let dbs = TestDatabases::create().await;

    assert_eq!(insert_image_rows(&dbs.catalog, "image", 240, 7).await, 240);
    assert_eq!(insert_audio_rows(&dbs.catalog, "audio", 120, 7).await, 120);
    assert_eq!(insert_image_rows(&dbs.api, "image", 50, 8).await, 50);
    assert_eq!(insert_audio_rows(&dbs.api, "audio", 50, 8).await, 50);
    assert_eq!(
        mark_deleted(&dbs.api, "api_deletedimage", 240, 7, 10).await,
        24
    );
    assert_eq!(
        mark_mature(&dbs.api, "api_matureimage", 240, 7, 20).await,
        12
    );

    // Deterministic: the deleted identifiers are catalog rows.
    let row = dbs
        .catalog
        .query_one(
            "SELECT count(*) FROM image WHERE identifier = md5('7/10')::uuid",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);

    // Every edge case is present.
    let row = dbs
        .catalog
        .query_one(
            "SELECT count(*) FILTER (WHERE removed_from_source),
                    count(*) FILTER (WHERE standardized_popularity = 0),
                    count(*) FILTER (WHERE standardized_popularity IS NULL),
                    count(*) FILTER (WHERE standardized_popularity > 1e6),
                    count(*) FILTER (WHERE length(meta_data->>'description') > 2000),
                    count(*) FILTER (WHERE (meta_data->>'mature')::boolean),
                    count(*) FILTER (WHERE tags IS NULL),
                    count(*) FILTER (WHERE jsonb_typeof(tags) = 'object'),
                    count(*) FILTER (WHERE url ~ '\\.[A-Za-z]+$'),
                    count(*) FILTER (WHERE url !~ '/[^/]*\\.[^/]*$'),
                    count(DISTINCT ingestion_type)
             FROM image",
            &[],
        )
        .await
        .unwrap();
    for k in 0..11 {
        assert!(row.get::<_, i64>(k) > 0, "edge case column {k} missing");
    }
    let row = dbs
        .catalog
        .query_one(
            "SELECT count(*) FILTER (WHERE alt_files IS NOT NULL AND jsonb_array_length(alt_files) > 1),
                    count(*) FILTER (WHERE duration IS NULL),
                    count(*) FILTER (WHERE duration >= 600000),
                    (SELECT count(*) FROM audioset_view)
             FROM audio",
            &[],
        )
        .await
        .unwrap();
    for k in 0..4 {
        assert!(
            row.get::<_, i64>(k) > 0,
            "audio edge case column {k} missing"
        );
    }
    // API ids come from the sequence.
    let row = dbs
        .api
        .query_one("SELECT min(id), max(id) FROM image", &[])
        .await
        .unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, i32>(1)), (1, 50));

    let target = dbs.catalog_target();
    assert_eq!(target.dbname, dbs.catalog_db);
    let names = [dbs.api_db.clone(), dbs.catalog_db.clone()];
    dbs.drop_all().await;

    let admin = connect(&test_pg_url()).await;
    let row = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = ANY($1)",
            &[&names.to_vec()],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        0,
        "databases still exist after drop_all"
    );
}

#[tokio::test]
async fn drop_cleans_up_without_drop_all() {
    let name = {
        let dbs = TestDatabases::create().await;
        dbs.api_db.clone()
    };
    let admin = connect(&test_pg_url()).await;
    let row = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 0);
}
