//! `document::select_sql` + `SourceRow::from_row` against real PostgreSQL tables shaped like
//! the API database's (DESIGN §9): the query the worker runs must parse, page by keyset and
//! compute the deleted / mature flags.

use refresh_core::document::{select_sql, to_document, SourceRow};
use refresh_core::media::MediaType;
use serde_json::{json, Value};
use tokio_postgres::{Client, NoTls};

fn pg_url() -> String {
    std::env::var("TEST_PG_URL")
        .expect("TEST_PG_URL must be set to a superuser URL of the test PostgreSQL cluster")
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A fresh database, dropped by `drop`.
struct TempDb {
    admin: Client,
    name: String,
    client: Client,
}

impl TempDb {
    async fn new() -> TempDb {
        let admin = connect(&pg_url()).await;
        let name = format!("t_doc_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        let mut config: tokio_postgres::Config = pg_url().parse().unwrap();
        config.dbname(&name);
        let (client, connection) = config.connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        TempDb {
            admin,
            name,
            client,
        }
    }

    async fn drop(self) {
        drop(self.client);
        self.admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await
            .unwrap();
    }
}

const COMMON_COLUMNS: &str = "
    id integer PRIMARY KEY,
    created_on timestamptz NOT NULL,
    updated_on timestamptz NOT NULL,
    identifier uuid NOT NULL UNIQUE,
    provider varchar(80),
    source varchar(80),
    foreign_identifier text,
    foreign_landing_url text,
    url text,
    thumbnail text,
    filesize integer,
    license varchar(50) NOT NULL,
    license_version varchar(25),
    creator text,
    creator_url text,
    title text,
    last_synced_with_source timestamptz,
    removed_from_source boolean NOT NULL,
    meta_data jsonb,
    view_count integer DEFAULT 0,
    tags jsonb,
    watermarked boolean,
    filetype varchar(80),
    standardized_popularity double precision,
    category varchar(80)";

async fn create_tables(client: &Client, media: MediaType) {
    let extra = match media {
        MediaType::Image => "width integer, height integer",
        MediaType::Audio => {
            "audio_set_position integer, genres varchar(80)[], duration integer, bit_rate integer, \
             sample_rate integer, alt_files jsonb, audio_set_foreign_identifier text"
        }
    };
    client
        .batch_execute(&format!(
            "CREATE TABLE {temp} ({COMMON_COLUMNS}, {extra});
             CREATE TABLE {deleted} (identifier uuid PRIMARY KEY, created_on timestamptz NOT NULL DEFAULT now(),
                                     updated_on timestamptz NOT NULL DEFAULT now());
             CREATE TABLE {mature} (identifier uuid PRIMARY KEY, created_on timestamptz NOT NULL DEFAULT now());",
            temp = media.temp_table(),
            deleted = media.deleted_table(),
            mature = media.mature_table(),
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
                &json!([{"name": "cat", "accuracy": 0.95}, {"name": "tree"}]),
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
    let db = TempDb::new().await;
    let client = &db.client;
    create_tables(client, MediaType::Image).await;
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
        json!([{"name": "cat", "accuracy": 0.95}, {"name": "tree"}])
    );

    // Nothing past the range end.
    assert!(page(client, MediaType::Image, 9, 9, 100).await.is_empty());
    db.drop().await;
}

#[tokio::test]
async fn audio_rows_carry_duration_and_alt_files() {
    let db = TempDb::new().await;
    let client = &db.client;
    create_tables(client, MediaType::Audio).await;
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
    assert!(doc.get("description").is_none());
    db.drop().await;
}
