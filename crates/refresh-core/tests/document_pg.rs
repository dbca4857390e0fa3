//! `document::select_sql` + `SourceRow::from_row` against real PostgreSQL tables shaped like
//! the API database's (DESIGN §9): the query the worker runs must parse, page by keyset and
//! compute the deleted / mature flags.

use refresh_core::document::{select_sql, to_document, SourceRow};
use refresh_core::media::MediaType;
use serde_json::{json, Value};
use testkit::TestDatabases;
use tokio_postgres::Client;

/// The temp table as the copy makes it: shaped like the live API table of the schema files.
async fn create_temp_table(client: &Client, media: MediaType) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {temp} (LIKE {live} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
            temp = media.temp_table(),
            live = media.table(),
        ))
        .await
        .unwrap();
}

fn identifier(n: i32) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x1000_0000_0000_0000_0000_0000_0000_0000 + n as u128)
}

async fn insert_image(client: &Client, id: i32, meta: Value, removed: bool) {
    client
        .execute(
            "INSERT INTO temp_import_image (id, created_on, updated_on, identifier, provider, source, url,
                 license, creator, title, removed_from_source, meta_data, tags, filetype,
                 standardized_popularity, category, width, height)
             VALUES ($1, '2024-01-02T03:04:05Z', now(), $2, 'met', 'met', $3, 'BY', 'Ada', $4, $5, $6,
                     $7, 'jpg', $8, 'photograph', 800, 600)",
            &[
                &id,
                &identifier(id),
                &format!("https://images.example.org/{id}/photo.PNG?x=1"),
                &format!("Title {id}"),
                &removed,
                &meta,
                &json!([{"name": "cat", "accuracy": 0.95}, {"name": "tree", "accuracy": null}]),
                &0.25f64,
            ],
        )
        .await
        .unwrap();
}

async fn page(
    client: &Client,
    media: MediaType,
    cursor: i64,
    end: i64,
    limit: i64,
) -> Vec<SourceRow> {
    client
        .query(&select_sql(media), &[&cursor, &end, &limit])
        .await
        .unwrap()
        .iter()
        .map(|row| SourceRow::from_row(row).unwrap())
        .collect()
}

#[tokio::test]
async fn image_rows_page_by_keyset_with_flags() {
    let db = TestDatabases::create().await;
    let client = &db.api;
    create_temp_table(client, MediaType::Image).await;
    for id in 1..=10 {
        let meta = match id {
            3 => json!({"description": "é".repeat(2100), "authority_boost": 12}),
            4 => json!({"mature": true}),
            _ => json!({"description": format!("row {id}")}),
        };
        insert_image(client, id, meta, id == 5).await;
    }
    client
        .execute(
            "INSERT INTO api_deletedimage (identifier) VALUES ($1)",
            &[&identifier(6)],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO api_matureimage (identifier) VALUES ($1)",
            &[&identifier(7)],
        )
        .await
        .unwrap();

    // Range [2, 9] in pages of 3: cursor starts at start - 1 and moves to the last id.
    let (start, end) = (2i64, 9i64);
    let mut cursor = start - 1;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let rows = page(client, MediaType::Image, cursor, end, 3).await;
        if rows.is_empty() {
            break;
        }
        pages += 1;
        cursor = rows.last().unwrap().id;
        seen.extend(rows);
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen.iter().map(|r| r.id).collect::<Vec<_>>(),
        (2..=9).collect::<Vec<_>>()
    );

    let by_id = |id: i64| seen.iter().find(|r| r.id == id).unwrap();
    assert!(by_id(5).removed_from_source);
    assert!(by_id(6).deleted && !by_id(2).deleted);
    assert!(by_id(7).mature_listed && !by_id(4).mature_listed);
    assert_eq!(by_id(3).meta_authority_boost, Some(json!(12)));
    assert_eq!(by_id(2).identifier, identifier(2).to_string());

    let docs: Vec<Value> = seen
        .iter()
        .filter_map(|r| to_document(MediaType::Image, r))
        .map(|d| serde_json::to_value(d).unwrap())
        .collect();
    let ids: Vec<i64> = docs.iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert_eq!(
        ids,
        vec![2, 3, 4, 7, 8, 9],
        "removed (5) and deleted (6) rows are skipped"
    );
    let doc = |id: i64| docs.iter().find(|d| d["id"] == id).unwrap();
    assert_eq!(doc(2)["license"], "by");
    assert_eq!(doc(2)["created_on"], "2024-01-02T03:04:05Z");
    assert_eq!(doc(2)["description"], "row 2");
    assert_eq!(doc(2)["extension"], "png");
    assert_eq!(doc(2)["size"], "medium");
    assert_eq!(doc(2)["aspect_ratio"], "wide");
    assert_eq!(doc(2)["standardized_popularity"], 25.0);
    assert_eq!(
        doc(2)["authority_boost"],
        90.0,
        "met is a cultural institution"
    );
    assert_eq!(
        doc(3)["authority_boost"],
        12.0,
        "meta_data wins over the provider"
    );
    assert_eq!(
        doc(3)["description"].as_str().unwrap().chars().count(),
        2000
    );
    assert_eq!(doc(4)["mature"], true);
    assert_eq!(doc(7)["mature"], true);
    assert_eq!(doc(8)["mature"], false);
    assert_eq!(
        doc(2)["tags"],
        json!([{"name": "cat", "accuracy": 0.95}, {"name": "tree", "accuracy": null}])
    );

    // Nothing past the range end.
    assert!(page(client, MediaType::Image, 9, 9, 100).await.is_empty());
    db.drop_all().await;
}

#[tokio::test]
async fn audio_rows_carry_duration_and_alt_files() {
    let db = TestDatabases::create().await;
    let client = &db.api;
    create_temp_table(client, MediaType::Audio).await;
    client
        .execute(
            "INSERT INTO temp_import_audio (id, created_on, updated_on, identifier, provider, source, url,
                 license, removed_from_source, meta_data, tags, filetype, duration, alt_files)
             VALUES (1, now(), now(), $1, 'freesound', 'freesound', 'https://x.org/a.mp3', 'cc0', false,
                     NULL, NULL, 'mp3', 185000, $2)",
            &[&identifier(1), &json!([{"url": "https://x.org/a.ogg", "filetype": "ogg"}])],
        )
        .await
        .unwrap();
    let rows = page(client, MediaType::Audio, 0, 1, 10).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].duration, Some(185_000));
    assert_eq!(rows[0].width, None);
    let doc = serde_json::to_value(to_document(MediaType::Audio, &rows[0]).unwrap()).unwrap();
    assert_eq!(doc["length"], "medium");
    assert_eq!(doc["extension"], json!(["ogg"]));
    assert_eq!(doc["filetype"], "mp3");
    assert_eq!(doc["mature"], false);
    // Absent values are written as null: the search API reads some keys directly.
    assert_eq!(doc.get("description"), Some(&Value::Null));
    db.drop_all().await;
}
