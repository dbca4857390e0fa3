//! Steps 8 and 9 against a real PostgreSQL (TEST_PG_URL): reapply constraints to the temp
//! table, then promote it in one transaction.

use refresh_core::error::{ErrorKind, StepError};
use refresh_core::media::MediaType;
use refresh_core::pg::job::{CancellationToken, JobProgress};
use refresh_core::pg::promote::{
    promote_table, promote_table_with, promote_table_with_hook, reapply_constraints,
    reapply_constraints_until, table_promoted_by, temp_name, validate_foreign_keys,
    ForeignKeyCheck, PromotionOptions, PromotionRecord, PromotionStage, ReapplyAction,
};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use testkit::{insert_audio_rows, insert_image_rows, Client, TestDatabases};

/// What the acceptance criterion compares: index names + definitions, constraint names +
/// types + definitions, read straight from the catalog (independently of the library).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Catalog {
    indexes: BTreeMap<String, String>,
    constraints: BTreeMap<String, String>,
}

async fn catalog(client: &Client, table: &str) -> Catalog {
    let indexes = client
        .query(
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1",
            &[&table],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let constraints = client
        .query(
            "SELECT conname::text, contype::text || ' ' || pg_get_constraintdef(oid) || ' ' || condeferrable::text
                    || ' ' || condeferred::text || ' ' || convalidated::text
               FROM pg_constraint WHERE conrelid = to_regclass($1)",
            &[&table],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Catalog {
        indexes,
        constraints,
    }
}

/// Promotion as before the keys were validated later: orphans deleted and keys re-created
/// valid inside the transaction.
fn in_transaction() -> PromotionOptions {
    PromotionOptions {
        foreign_keys: ForeignKeyCheck::InTransaction,
        ..PromotionOptions::default()
    }
}

/// The validation after promotion (the worker's `validate_foreign_keys` job); returns the
/// orphans it deleted.
async fn validate(client: &Client, media: MediaType) -> u64 {
    let report = validate_foreign_keys(
        client,
        media,
        &JobProgress::default(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    report.orphans_deleted
}

/// Foreign keys pointing at `table`: (referencing table, name) -> definition.
async fn foreign_keys_to(client: &Client, table: &str) -> BTreeMap<(String, String), String> {
    client
        .query(
            "SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid)
               FROM pg_constraint WHERE contype = 'f' AND confrelid = to_regclass($1)",
            &[&table],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect()
}

async fn oid(client: &Client, table: &str) -> Option<u32> {
    client
        .query_one("SELECT to_regclass($1)::oid", &[&table])
        .await
        .unwrap()
        .get::<_, Option<u32>>(0)
}

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Everything a failed promotion must leave exactly as it was.
#[derive(Debug, PartialEq)]
struct World {
    live_oid: Option<u32>,
    temp_oid: Option<u32>,
    live: Catalog,
    temp: Catalog,
    foreign_keys: BTreeMap<(String, String), String>,
    live_rows: i64,
    live_checksum: String,
    decisions: i64,
    serial_sequence: Option<String>,
}

async fn world(client: &Client, media: MediaType) -> World {
    let live = media.table();
    let temp = media.temp_table();
    let decisions = format!("api_{live}decision");
    World {
        live_oid: oid(client, live).await,
        temp_oid: oid(client, temp).await,
        live: catalog(client, live).await,
        temp: catalog(client, temp).await,
        foreign_keys: foreign_keys_to(client, live).await,
        live_rows: count(client, &format!("SELECT count(*) FROM {live}")).await,
        live_checksum: client
            .query_one(
                &format!(
                    "SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY id)), '') FROM {live} t"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0),
        decisions: count(client, &format!("SELECT count(*) FROM {decisions}")).await,
        serial_sequence: client
            .query_one("SELECT pg_get_serial_sequence($1, 'id')", &[&live])
            .await
            .unwrap()
            .get(0),
    }
}

/// Live table with `live_rows` rows and a decision for each of them; temp table as the copy
/// step leaves it (LIKE ... INCLUDING DEFAULTS INCLUDING CONSTRAINTS, primary key added)
/// with the first `new_rows` of the same rows, so decisions for the rest become orphans.
async fn image_fixture(api: &Client, live_rows: i64, new_rows: i64) {
    insert_image_rows(api, "image", live_rows, 7).await;
    api.batch_execute(
        "INSERT INTO api_imagedecision (action, media_obj_id) SELECT 'marked_sensitive', identifier FROM image;
         CREATE TABLE temp_import_image (LIKE image INCLUDING DEFAULTS INCLUDING CONSTRAINTS);",
    )
    .await
    .unwrap();
    insert_image_rows(api, "temp_import_image", new_rows, 7).await;
    api.batch_execute("ALTER TABLE temp_import_image ADD PRIMARY KEY (id)")
        .await
        .unwrap();
}

#[tokio::test]
async fn reapply_then_promote_keeps_every_name_and_repoints_foreign_keys() {
    let mut dbs = TestDatabases::create().await;
    let reader = testkit::unique_name("t_reader");
    let api = &mut dbs.api;
    image_fixture(api, 200, 150).await;
    // The API may read as another role, and the table may carry a comment: both survive,
    // and the copy's bookkeeping comment on the temp table does not become the live one's.
    api.batch_execute(&format!(
        "CREATE ROLE {reader}; GRANT SELECT ON image TO {reader};
         COMMENT ON TABLE image IS 'media served by the API';
         COMMENT ON TABLE temp_import_image IS '{{\"rows_copied\": 150}}';"
    ))
    .await
    .unwrap();
    let before = catalog(api, "image").await;
    let fks_before = foreign_keys_to(api, "image").await;
    let old_oid = oid(api, "image").await.unwrap();
    assert_eq!(before.indexes.len(), 14, "{before:?}");
    assert_eq!(fks_before.len(), 1);

    let report = reapply_constraints(api, MediaType::Image).await.unwrap();
    assert!(report.done && report.analyzed);
    assert_eq!(report.indexes.len(), before.indexes.len());
    let pkey = report
        .indexes
        .iter()
        .find(|i| i.live_name == "image_pkey")
        .unwrap();
    assert_eq!(pkey.temp_name, "image_pkey_tmp");
    assert_eq!(
        pkey.action,
        ReapplyAction::Renamed {
            from: "temp_import_image_pkey".into()
        }
    );
    assert!(report
        .indexes
        .iter()
        .filter(|i| i.live_name != "image_pkey")
        .all(|i| i.action == ReapplyAction::Created));
    // The temp table now has every live index under its temp name, live still untouched.
    let temp = catalog(api, "temp_import_image").await;
    let expected_temp_names: Vec<String> = before.indexes.keys().map(|n| temp_name(n)).collect();
    assert_eq!(temp.indexes.keys().cloned().collect::<Vec<_>>(), {
        let mut v = expected_temp_names.clone();
        v.sort();
        v
    });
    assert_eq!(catalog(api, "image").await, before);

    // Idempotent: a second run finds everything in place.
    let again = reapply_constraints(api, MediaType::Image).await.unwrap();
    assert!(
        again
            .indexes
            .iter()
            .all(|i| i.action == ReapplyAction::Present),
        "{again:?}"
    );
    assert!(again.dropped.is_empty());

    let max_new_id = count(api, "SELECT max(id)::bigint FROM temp_import_image").await;
    let promoted = promote_table(api, MediaType::Image).await.unwrap();
    assert!(promoted.promoted);
    assert_eq!(promoted.foreign_keys_repointed, 1);
    assert_eq!(promoted.foreign_keys_not_valid, 1);
    assert_eq!(promoted.orphans_deleted, 0);
    assert_eq!(promoted.rows, 150);
    // Re-created NOT VALID; the orphans go with the validation afterwards.
    assert_eq!(
        count(api, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confrelid = 'image'::regclass AND NOT convalidated").await,
        1
    );
    assert_eq!(validate(api, MediaType::Image).await, 50);

    // Same index and constraint names and definitions; a different table underneath.
    let after = catalog(api, "image").await;
    assert_eq!(after, before);
    // The planner has statistics for the new table from the start.
    assert!(
        count(
            api,
            "SELECT count(*) FROM pg_stats WHERE tablename = 'image' AND attname = 'provider'"
        )
        .await
            > 0
    );
    assert_ne!(oid(api, "image").await.unwrap(), old_oid);
    assert_eq!(oid(api, "temp_import_image").await, None);
    assert_eq!(count(api, "SELECT count(*) FROM image").await, 150);

    // The foreign key is the same constraint, now on the new table, and orphans are gone.
    assert_eq!(foreign_keys_to(api, "image").await, fks_before);
    assert_eq!(
        count(api, "SELECT count(*) FROM api_imagedecision").await,
        150
    );
    assert_eq!(
        count(api, "SELECT count(*) FROM api_imagedecision d WHERE NOT EXISTS (SELECT 1 FROM image i WHERE i.identifier = d.media_obj_id)").await,
        0
    );
    let orphan = api
        .execute(
            "INSERT INTO api_imagedecision (action, media_obj_id) VALUES ('x', '00000000-0000-0000-0000-000000000000')",
            &[],
        )
        .await;
    assert!(
        orphan.is_err(),
        "the re-created foreign key must reject unknown identifiers"
    );

    // The id default still works and continues above every copied id.
    assert_eq!(
        api.query_one("SELECT pg_get_serial_sequence('image', 'id')", &[])
            .await
            .unwrap()
            .get::<_, Option<String>>(0),
        Some("public.image_id_seq".to_string())
    );
    let new_id: i32 = api
        .query_one(
            "INSERT INTO image (created_on, updated_on, identifier, license, removed_from_source)
             VALUES (now(), now(), gen_random_uuid(), 'by', false) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(i64::from(new_id) > max_new_id, "{new_id} <= {max_new_id}");

    let row = api
        .query_one(
            "SELECT obj_description('image'::regclass, 'pg_class'), has_table_privilege($1, 'image', 'SELECT'),
                    has_table_privilege($1, 'image', 'INSERT')",
            &[&reader],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some("media served by the API")
    );
    assert!(
        row.get::<_, bool>(1),
        "the reader role lost SELECT on image"
    );
    assert!(!row.get::<_, bool>(2), "the reader role gained INSERT");

    dbs.drop_all().await;
    let admin = testkit::connect(&testkit::test_pg_url()).await;
    admin
        .batch_execute(&format!("DROP ROLE {reader}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failure_at_any_stage_leaves_the_live_table_untouched() {
    let mut dbs = TestDatabases::create().await;
    let api = &mut dbs.api;
    image_fixture(api, 120, 100).await;
    reapply_constraints(api, MediaType::Image).await.unwrap();
    let before = world(api, MediaType::Image).await;
    assert_eq!(before.decisions, 120);

    let stages = [
        PromotionStage::Locked,
        PromotionStage::ForeignKeysDropped,
        PromotionStage::LiveTableDropped,
        PromotionStage::Renamed,
        PromotionStage::SequencesMoved,
        PromotionStage::ForeignKeysRestored,
    ];
    let modes = [PromotionOptions::default(), in_transaction()];
    for (options, stage) in modes
        .iter()
        .flat_map(|options| stages.iter().map(move |stage| (options, *stage)))
    {
        let mut reached = Vec::new();
        let mut hook = |at: PromotionStage| {
            reached.push(at);
            if at == stage {
                Err(StepError::new(
                    ErrorKind::Internal,
                    format!("injected failure at {at:?}"),
                ))
            } else {
                Ok(())
            }
        };
        let err = promote_table_with_hook(api, MediaType::Image, options, &mut hook)
            .await
            .unwrap_err();
        assert!(
            err.message.contains("injected failure"),
            "{stage:?}: {}",
            err.message
        );
        assert_eq!(
            reached.last(),
            Some(&stage),
            "the hook must have reached {stage:?}"
        );
        assert_eq!(
            world(api, MediaType::Image).await,
            before,
            "state changed after a failure at {stage:?}"
        );
    }

    // And the same promotion goes through afterwards (orphans deleted in the transaction).
    let report = promote_table_with(api, MediaType::Image, &in_transaction())
        .await
        .unwrap();
    assert_eq!(report.orphans_deleted, 20);
    assert_eq!(report.foreign_keys_not_valid, 0);
    assert_eq!(catalog(api, "image").await, before.live);
    dbs.drop_all().await;
}

#[tokio::test]
async fn the_promotion_record_exists_exactly_when_the_swap_committed() {
    let mut dbs = TestDatabases::create().await;
    let api = &mut dbs.api;
    image_fixture(api, 50, 40).await;
    reapply_constraints(api, MediaType::Image).await.unwrap();
    let options = PromotionOptions {
        record: Some(PromotionRecord {
            new_index: "image-rec".into(),
            new_filtered_index: "image-rec-filtered".into(),
        }),
        ..PromotionOptions::default()
    };
    assert!(!table_promoted_by(&*api, "image-rec").await.unwrap());

    // Rolled back at the last stage: no record, so cleanup may delete the new indices.
    let mut hook = |at: PromotionStage| {
        if at == PromotionStage::ForeignKeysRestored {
            Err(StepError::new(ErrorKind::Internal, "injected failure"))
        } else {
            Ok(())
        }
    };
    promote_table_with_hook(api, MediaType::Image, &options, &mut hook)
        .await
        .unwrap_err();
    assert!(!table_promoted_by(&*api, "image-rec").await.unwrap());

    let report = promote_table_with(api, MediaType::Image, &options)
        .await
        .unwrap();
    assert_eq!(report.rows, 40);
    assert!(table_promoted_by(&*api, "image-rec").await.unwrap());
    assert!(!table_promoted_by(&*api, "image-other").await.unwrap());
}

#[tokio::test]
async fn a_database_error_midway_rolls_everything_back() {
    let mut dbs = TestDatabases::create().await;
    let api = &mut dbs.api;
    image_fixture(api, 60, 40).await;
    reapply_constraints(api, MediaType::Image).await.unwrap();
    // A view on the live table makes DROP TABLE fail — after the foreign key was dropped
    // and the orphans deleted inside the same transaction.
    api.batch_execute("CREATE VIEW image_titles AS SELECT id, title FROM image")
        .await
        .unwrap();
    let before = world(api, MediaType::Image).await;

    let err = promote_table_with(api, MediaType::Image, &in_transaction())
        .await
        .unwrap_err();
    assert!(
        err.message.contains("dropping the old image"),
        "{}",
        err.message
    );
    assert!(err.message.contains("image_titles"), "{}", err.message);
    assert_eq!(world(api, MediaType::Image).await, before);
    assert_eq!(before.decisions, 60);

    api.batch_execute("DROP VIEW image_titles").await.unwrap();
    let report = promote_table(api, MediaType::Image).await.unwrap();
    assert_eq!(report.orphans_deleted, 0);
    assert_eq!(validate(api, MediaType::Image).await, 20);
    dbs.drop_all().await;
}

#[tokio::test]
async fn promotion_is_refused_without_a_complete_temp_table() {
    let mut dbs = TestDatabases::create().await;
    let api = &mut dbs.api;
    insert_image_rows(api, "image", 30, 3).await;
    api.batch_execute(
        "INSERT INTO api_imagedecision (action, media_obj_id) SELECT 'x', identifier FROM image",
    )
    .await
    .unwrap();

    let before = world(api, MediaType::Image).await;
    let err = promote_table(api, MediaType::Image).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState);
    assert!(
        err.message.contains("temp_import_image does not exist"),
        "{}",
        err.message
    );
    assert_eq!(world(api, MediaType::Image).await, before);
    let err = reapply_constraints(api, MediaType::Image)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState);

    // A temp table without the live indexes (reapply never ran) is refused too.
    api.batch_execute(
        "CREATE TABLE temp_import_image (LIKE image INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
         ALTER TABLE temp_import_image ADD PRIMARY KEY (id);",
    )
    .await
    .unwrap();
    let before = world(api, MediaType::Image).await;
    let err = promote_table(api, MediaType::Image).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState);
    assert!(
        err.message.contains("image_category_idx_tmp"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("temp_import_image_pkey"),
        "{}",
        err.message
    );
    assert_eq!(world(api, MediaType::Image).await, before);

    // One index short after reapply: still refused, naming it.
    reapply_constraints(api, MediaType::Image).await.unwrap();
    api.batch_execute("DROP INDEX image_source_like_idx_tmp")
        .await
        .unwrap();
    let err = promote_table(api, MediaType::Image).await.unwrap_err();
    assert!(
        err.message.contains("image_source_like_idx_tmp"),
        "{}",
        err.message
    );
    assert_eq!(oid(api, "image").await, before.live_oid);
    dbs.drop_all().await;
}

#[tokio::test]
async fn reapply_resumes_and_repairs_after_a_partial_run() {
    let dbs = TestDatabases::create().await;
    let api = &dbs.api;
    image_fixture(api, 20, 20).await;

    // Deadline already passed: nothing is built, and the report says so.
    let partial = reapply_constraints_until(api, MediaType::Image, Some(Instant::now()))
        .await
        .unwrap();
    assert!(!partial.done && !partial.analyzed);
    assert_eq!(
        catalog(api, "temp_import_image")
            .await
            .indexes
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        vec!["image_pkey_tmp".to_string()]
    );

    let full = reapply_constraints(api, MediaType::Image).await.unwrap();
    assert!(full.done);
    // Damage it: lose one index, change another's definition, add an index live lacks.
    api.batch_execute(
        "DROP INDEX image_provider_idx_tmp;
         DROP INDEX image_source_idx_tmp; CREATE INDEX image_source_idx_tmp ON temp_import_image (title);
         CREATE INDEX temp_import_image_extra ON temp_import_image (creator);
         ALTER TABLE temp_import_image ADD CONSTRAINT stray_check CHECK (width > 0);",
    )
    .await
    .unwrap();
    let repaired = reapply_constraints(api, MediaType::Image).await.unwrap();
    let action = |name: &str| {
        repaired
            .indexes
            .iter()
            .find(|i| i.live_name == name)
            .unwrap()
            .action
            .clone()
    };
    assert_eq!(action("image_provider_idx"), ReapplyAction::Created);
    assert_eq!(action("image_source_idx"), ReapplyAction::Replaced);
    assert_eq!(action("image_category_idx"), ReapplyAction::Present);
    let mut dropped = repaired.dropped.clone();
    dropped.sort();
    assert_eq!(
        dropped,
        vec![
            "image_source_idx_tmp",
            "stray_check",
            "temp_import_image_extra"
        ]
    );

    let before = catalog(api, "image").await;
    let mut dbs = dbs;
    promote_table(&mut dbs.api, MediaType::Image).await.unwrap();
    assert_eq!(catalog(&dbs.api, "image").await, before);
    dbs.drop_all().await;
}

/// Audio with everything the shipped schema lacks: a check constraint, a deferrable unique
/// constraint, a partial expression index with a name too long for `<name>_tmp`, and the
/// copy's own id sequence.
#[tokio::test]
async fn unusual_indexes_constraints_and_the_copy_sequence_survive() {
    let mut dbs = TestDatabases::create().await;
    let api = &mut dbs.api;
    let long_index = format!("audio_lower_title_partial_{}", "x".repeat(63 - 26));
    assert_eq!(long_index.len(), 63);
    api.batch_execute(&format!(
        "ALTER TABLE audio ADD CONSTRAINT audio_duration_nonnegative CHECK (duration IS NULL OR duration >= 0);
         ALTER TABLE audio ADD CONSTRAINT audio_url_provider_deferred UNIQUE (url, provider) DEFERRABLE INITIALLY DEFERRED;
         CREATE INDEX \"{long_index}\" ON audio (lower(title)) WHERE NOT removed_from_source;"
    ))
    .await
    .unwrap();
    insert_audio_rows(api, "audio", 50, 11).await;
    api.batch_execute(
        "INSERT INTO api_audiodecision (action, media_obj_id) SELECT 'x', identifier FROM audio;
         CREATE TABLE temp_import_audio (LIKE audio INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
         CREATE SEQUENCE temp_import_audio_id_seq OWNED BY temp_import_audio.id;
         ALTER TABLE temp_import_audio ALTER COLUMN id SET DEFAULT nextval('temp_import_audio_id_seq');",
    )
    .await
    .unwrap();
    insert_audio_rows(api, "temp_import_audio", 45, 11).await;
    api.batch_execute("ALTER TABLE temp_import_audio ADD PRIMARY KEY (id)")
        .await
        .unwrap();
    let before = catalog(api, "audio").await;
    assert!(before.indexes.contains_key(&long_index));

    let report = reapply_constraints(api, MediaType::Audio).await.unwrap();
    let long = report
        .indexes
        .iter()
        .find(|i| i.live_name == long_index)
        .unwrap();
    assert!(
        long.temp_name.len() <= 63 && long.temp_name.ends_with("_tmp"),
        "{}",
        long.temp_name
    );
    let check = report
        .constraints
        .iter()
        .find(|c| c.live_name == "audio_duration_nonnegative")
        .unwrap();
    // LIKE ... INCLUDING CONSTRAINTS already copied the check constraint.
    assert_eq!(check.action, ReapplyAction::Present);

    let promoted = promote_table(api, MediaType::Audio).await.unwrap();
    assert_eq!(promoted.foreign_keys_not_valid, 1);
    assert_eq!(validate(api, MediaType::Audio).await, 5);
    assert_eq!(catalog(api, "audio").await, before);
    // The live sequence is back in charge; the copy's sequence is gone.
    assert_eq!(oid(api, "temp_import_audio_id_seq").await, None);
    let default: String = api
        .query_one(
            "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'audio'::regclass AND adnum = 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(default, "nextval('audio_id_seq'::regclass)");
    let max_id = count(api, "SELECT max(id)::bigint FROM audio").await;
    let next: i64 = api
        .query_one("SELECT nextval('audio_id_seq')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, max_id + 1);
    dbs.drop_all().await;
}

/// A live table whose id is an identity column keeps an identity column with the same
/// sequence name, continuing above the promoted rows.
#[tokio::test]
async fn identity_id_columns_are_carried_over() {
    let mut dbs = TestDatabases::create().await;
    let api = &mut dbs.api;
    api.batch_execute(
        "ALTER TABLE image ALTER COLUMN id DROP DEFAULT;
         DROP SEQUENCE image_id_seq;
         ALTER TABLE image ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY (SEQUENCE NAME image_id_seq);",
    )
    .await
    .unwrap();
    insert_image_rows(api, "image", 10, 5).await;
    api.batch_execute(
        "CREATE TABLE temp_import_image (LIKE image INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
         CREATE SEQUENCE temp_import_image_id_seq OWNED BY temp_import_image.id;
         ALTER TABLE temp_import_image ALTER COLUMN id SET DEFAULT nextval('temp_import_image_id_seq');",
    )
    .await
    .unwrap();
    insert_image_rows(api, "temp_import_image", 25, 5).await;
    api.batch_execute("ALTER TABLE temp_import_image ADD PRIMARY KEY (id)")
        .await
        .unwrap();
    let before = catalog(api, "image").await;

    reapply_constraints(api, MediaType::Image).await.unwrap();
    promote_table(api, MediaType::Image).await.unwrap();
    assert_eq!(catalog(api, "image").await, before);
    let identity: String = api
        .query_one("SELECT attidentity::text FROM pg_attribute WHERE attrelid = 'image'::regclass AND attname = 'id'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(identity, "d");
    assert_eq!(oid(api, "temp_import_image_id_seq").await, None);
    let new_id: i32 = api
        .query_one(
            "INSERT INTO image (created_on, updated_on, identifier, license, removed_from_source)
             VALUES (now(), now(), gen_random_uuid(), 'by', false) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(new_id, 26);
    dbs.drop_all().await;
}

#[tokio::test]
async fn a_busy_live_table_is_a_transient_error_and_changes_nothing() {
    let mut dbs = TestDatabases::create().await;
    image_fixture(&dbs.api, 30, 20).await;
    reapply_constraints(&dbs.api, MediaType::Image)
        .await
        .unwrap();
    let before = world(&dbs.api, MediaType::Image).await;

    // An API transaction still reading the live table.
    let reader = dbs.connect_api().await;
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM image;")
        .await
        .unwrap();
    let options = PromotionOptions {
        lock_timeout: Duration::from_millis(200),
        ..PromotionOptions::default()
    };
    let err = promote_table_with(&mut dbs.api, MediaType::Image, &options)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::TransientDatabase, "{}", err.message);
    assert_eq!(err.kind.name(), "TransientDatabaseError");
    assert!(err.message.contains("55P03"), "{}", err.message);
    reader.batch_execute("COMMIT").await.unwrap();
    assert_eq!(world(&dbs.api, MediaType::Image).await, before);

    // Once the reader is done, the retry goes through.
    promote_table_with(&mut dbs.api, MediaType::Image, &options)
        .await
        .unwrap();
    assert_eq!(catalog(&dbs.api, "image").await, before.live);
    drop(reader);
    dbs.drop_all().await;
}

/// A build left running by an earlier call (its Lambda timed out) is waited for, not raced.
#[tokio::test]
async fn reapply_waits_for_a_build_still_running_from_an_earlier_call() {
    let dbs = TestDatabases::create().await;
    image_fixture(&dbs.api, 40, 40).await;
    // An index whose build takes ~2 s: 40 rows × 50 ms in a function that claims to be
    // immutable (PostgreSQL takes its word).
    dbs.api
        .batch_execute(
            "CREATE FUNCTION slow_id(integer) RETURNS integer IMMUTABLE LANGUAGE plpgsql
               AS $$ BEGIN PERFORM pg_sleep(0.05); RETURN $1; END $$;",
        )
        .await
        .unwrap();
    let other = dbs.connect_api().await;
    let build = tokio::spawn(async move {
        other
            .batch_execute("CREATE INDEX temp_import_image_slow ON temp_import_image (slow_id(id))")
            .await
    });
    // Until the other session shows up building, reapply would not know about it.
    let mut seen = false;
    for _ in 0..100 {
        let running = count(
            &dbs.api,
            "SELECT count(*) FROM pg_stat_progress_create_index WHERE relid = 'temp_import_image'::regclass",
        )
        .await;
        if running > 0 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "the slow build never started");

    let waiting = reapply_constraints(&dbs.api, MediaType::Image)
        .await
        .unwrap();
    assert!(!waiting.done, "{waiting:?}");
    assert!(waiting.indexes.is_empty() && waiting.dropped.is_empty());

    build.await.unwrap().unwrap();
    let finished = reapply_constraints(&dbs.api, MediaType::Image)
        .await
        .unwrap();
    assert!(finished.done);
    assert_eq!(finished.dropped, vec!["temp_import_image_slow".to_string()]);
    dbs.drop_all().await;
}
