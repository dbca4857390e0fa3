//! Deterministic generators of realistic media rows, written in one statement each.
//!
//! Row `i` (1-based) of seed `s` always has the same content; its identifier is
//! `md5('<s>/<i>')::uuid` (see [`identifier_sql`]), so tests can name rows without reading
//! them back. Edge cases cycle with `i`:
//! - `removed_from_source` when `i % 17 = 0`; `watermarked` when `i % 19 = 0`
//! - `tags` = `TAG_CASES[i % 12]` (every filtered kind, malformed tags, null, `[]`, non-array)
//! - `standardized_popularity` by `i % 9`: 0, null, 1e12, 1e-40, else a fraction
//! - `meta_data` null when `i % 23 = 0`; description > 2000 chars when `i % 11 = 0`;
//!   `mature` true when `i % 13 = 0`, false when `i % 13 = 1`; `authority_boost` 150 / 42.5
//!   when `i % 29` is 0 / 1
//! - `url` by `i % 4`: `.jpg`, no extension, `.PNG`, dot only in the host
//! - audio `duration` by `i % 6` (null and every length bucket), `alt_files` by `i % 4`
//!   (two files, null, `[]`, one file), `audio_set` (catalog) every 5th row
//!
//! Only the columns the target table has are written, so the same generator fills a catalog
//! table (with `ingestion_type`, `audio_set`), an API table (ids from its sequence) or a temp
//! table. Inserting the same seed twice into one table violates its unique keys: use
//! different seeds.

use tokio_postgres::Client;

/// Tag arrays the generators cycle through (`tags` of row `i` is `TAG_CASES[i % 12]`).
pub const TAG_CASES: [&str; 12] = [
    r#"[{"name":"cat","accuracy":0.95,"provider":"clarifai"},{"name":"dog"}]"#,
    r#"[{"name":"tree","accuracy":0.5,"provider":"clarifai"},{"name":"sky","accuracy":0.90}]"#,
    r#"[{"name":"person","accuracy":0.99,"provider":"rekognition"},{"name":"hat","provider":"clarifai"}]"#,
    r#"[{"name":"No Person"},{"name":"squareformat"},{"name":"BY"},{"name":"bycycle"}]"#,
    r#"[{"name":"uploaded:by=instagram"},{"name":"FlickrIOSApp filter"},{"name":"cc0 license"},{"name":"key=value"},{"name":"by-nc-sa 2.0"},{"name":"PDM"},{"name":"river"}]"#,
    r#"[{"accuracy":0.99},{"name":42},{"name":null},"loose string",7,null,{"name":"ok"}]"#,
    r#"[{"name":"strong","accuracy":"0.95"},{"name":"weak","accuracy":"0.2"},{"name":"bad","accuracy":"high"},{"name":"nullacc","accuracy":null},{"name":"boolacc","accuracy":true}]"#,
    "null",
    "[]",
    r#"[{"name":"Sunset","accuracy":0.900},{"name":"beach","accuracy":1.0E0}]"#,
    r#"{"name":"not an array"}"#,
    r#"[{"name":"mountain","accuracy":0.97,"provider":"clarifai"},{"name":"lake","accuracy":0.89,"provider":"clarifai"}]"#,
];

/// SQL expression of row `i`'s identifier for seed `$seed` (`i` and `seed` are bigint).
pub fn identifier_sql(i: &str, seed: &str) -> String {
    format!("md5(({seed})::text || '/' || ({i})::text)::uuid")
}

fn tags_sql() -> String {
    let arms: Vec<String> = TAG_CASES
        .iter()
        .enumerate()
        .map(|(k, json)| {
            let lit = if *json == "null" {
                "NULL::jsonb".to_string()
            } else {
                format!("'{}'::jsonb", json.replace('\'', "''"))
            };
            format!("WHEN {k} THEN {lit}")
        })
        .collect();
    format!("CASE i % {} {} END", TAG_CASES.len(), arms.join(" "))
}

/// Columns shared by image and audio, as (column, expression over `i` and `seed`).
fn common_columns(kind: &str) -> Vec<(&'static str, String)> {
    let ts = "(timestamptz '2020-01-01 00:00:00+00' + i * interval '1 minute')";
    let (providers, ext_a, ext_b) = if kind == "image" {
        ("ARRAY['flickr','stocksnap','met','smithsonian','wikimedia','rawpixel','behance','europeana']", ".jpg", ".PNG")
    } else {
        (
            "ARRAY['jamendo','freesound','wikimedia_audio','ccmixter']",
            ".mp3",
            ".OGG",
        )
    };
    let provider = format!("({providers})[1 + ((i + seed) % cardinality({providers}))]");
    vec![
        ("identifier", identifier_sql("i", "seed")),
        ("created_on", ts.to_string()),
        ("updated_on", format!("{ts} + interval '1 day'")),
        ("ingestion_type", "'provider_api'".to_string()),
        ("provider", provider.clone()),
        (
            "source",
            format!("CASE WHEN {provider} = 'smithsonian' THEN 'smithsonian_nmnh' ELSE {provider} END"),
        ),
        ("foreign_identifier", "'fid-' || seed || '-' || i".to_string()),
        ("foreign_landing_url", format!("'https://example.org/{kind}/landing/' || i")),
        (
            "url",
            format!(
                "CASE i % 4 \
                 WHEN 0 THEN 'https://example.org/' || seed || '/{kind}/' || i || '{ext_a}' \
                 WHEN 1 THEN 'https://example.org/' || seed || '/{kind}/' || i \
                 WHEN 2 THEN 'https://example.org/' || seed || '/{kind}/' || i || '{ext_b}' \
                 ELSE 'https://cdn.v1.example.org/' || seed || '/{kind}/' || i END"
            ),
        ),
        (
            "thumbnail",
            "CASE WHEN i % 5 = 0 THEN NULL ELSE 'https://example.org/thumb/' || i || '.jpg' END".to_string(),
        ),
        ("filesize", "CASE WHEN i % 6 = 0 THEN NULL ELSE 1000 + (i * 7919) % 5000000 END".to_string()),
        (
            "license",
            "(ARRAY['by','by-sa','cc0','pdm','BY-NC','by-nd'])[1 + (i % 6)]".to_string(),
        ),
        (
            "license_version",
            "(ARRAY['4.0','2.0',NULL,'1.0'])[1 + (i % 4)]".to_string(),
        ),
        ("creator", "'Creator ' || (i % 50)".to_string()),
        ("creator_url", "'https://example.org/creator/' || (i % 50)".to_string()),
        ("title", "CASE WHEN i % 10 = 0 THEN NULL ELSE 'Title ' || i END".to_string()),
        (
            "meta_data",
            "CASE WHEN i % 23 = 0 THEN NULL ELSE jsonb_strip_nulls(jsonb_build_object( \
               'description', CASE WHEN i % 11 = 0 THEN repeat('Long description ' || i || '. ', 200) \
                                   WHEN i % 3 = 0 THEN NULL ELSE 'Description of item ' || i END, \
               'mature', CASE i % 13 WHEN 0 THEN true WHEN 1 THEN false END, \
               'authority_boost', CASE i % 29 WHEN 0 THEN 150 WHEN 1 THEN 42.5 END, \
               'license_url', 'https://creativecommons.org/licenses/by/4.0/')) END"
                .to_string(),
        ),
        ("tags", tags_sql()),
        ("watermarked", "i % 19 = 0".to_string()),
        ("last_synced_with_source", format!("{ts} + interval '2 days'")),
        ("removed_from_source", "i % 17 = 0".to_string()),
        (
            "standardized_popularity",
            "(CASE i % 9 WHEN 0 THEN 0 WHEN 1 THEN NULL WHEN 2 THEN 1e12 WHEN 3 THEN 1e-40 \
               ELSE ((i * 37 + seed) % 1000) / 1000.0 END)::float8"
                .to_string(),
        ),
        ("view_count", "i % 100".to_string()),
    ]
}

fn image_columns() -> Vec<(&'static str, String)> {
    let mut cols = common_columns("image");
    cols.extend([
        (
            "width",
            "CASE WHEN i % 7 = 0 THEN NULL ELSE 100 + (i * 53) % 3000 END".to_string(),
        ),
        (
            "height",
            "CASE WHEN i % 7 = 0 THEN NULL ELSE 100 + (i * 97) % 2000 END".to_string(),
        ),
        (
            "filetype",
            "(ARRAY['jpg',NULL,'png',NULL])[1 + (i % 4)]".to_string(),
        ),
        (
            "category",
            "(ARRAY['photograph','digitized_artwork','illustration',NULL])[1 + (i % 4)]"
                .to_string(),
        ),
    ]);
    cols
}

fn audio_columns() -> Vec<(&'static str, String)> {
    let mut cols = common_columns("audio");
    let set_fid = "'set-' || seed || '-' || (i / 10)";
    let file = |ft: &str, rate: u32| {
        format!(
            "jsonb_build_object('url', 'https://example.org/alt/' || i || '.{ft}', 'filesize', 1000 + i, \
             'bit_rate', {rate}, 'sample_rate', 44100, 'filetype', '{ft}')"
        )
    };
    cols.extend([
        (
            "duration",
            "CASE i % 6 WHEN 0 THEN NULL WHEN 1 THEN 10000 WHEN 2 THEN 90000 WHEN 3 THEN 300000 \
             WHEN 4 THEN 3600000 ELSE 29999 END"
                .to_string(),
        ),
        ("bit_rate", "CASE WHEN i % 8 = 0 THEN NULL ELSE 128000 END".to_string()),
        ("sample_rate", "CASE WHEN i % 8 = 0 THEN NULL ELSE 44100 END".to_string()),
        (
            "alt_files",
            format!(
                "CASE i % 4 WHEN 0 THEN jsonb_build_array({}, {}) WHEN 1 THEN NULL \
                 WHEN 2 THEN '[]'::jsonb ELSE jsonb_build_array({}) END",
                file("flac", 900000),
                file("ogg", 192000),
                file("mp3", 320000)
            ),
        ),
        ("filetype", "(ARRAY['mp3','wav',NULL])[1 + (i % 3)]".to_string()),
        (
            "genres",
            "(CASE i % 3 WHEN 0 THEN ARRAY['rock','jazz'] WHEN 1 THEN NULL ELSE '{}' END)::varchar(80)[]"
                .to_string(),
        ),
        (
            "category",
            "(ARRAY['music','sound_effect','podcast',NULL])[1 + (i % 4)]".to_string(),
        ),
        (
            "audio_set",
            format!(
                "CASE WHEN i % 5 = 0 THEN jsonb_build_object('foreign_identifier', {set_fid}, \
                 'title', 'Album ' || (i / 10), 'foreign_landing_url', 'https://example.org/set/' || (i / 10), \
                 'creator', 'Creator ' || (i % 50), 'creator_url', 'https://example.org/creator/' || (i % 50), \
                 'thumbnail', 'https://example.org/set/' || (i / 10) || '.jpg', \
                 'url', 'https://example.org/set/' || (i / 10) || '.zip', 'filesize', 5000, 'filetype', 'zip') END"
            ),
        ),
        ("audio_set_position", "CASE WHEN i % 5 = 0 THEN i % 10 END".to_string()),
        ("audio_set_foreign_identifier", format!("CASE WHEN i % 5 = 0 THEN {set_fid} END")),
    ]);
    cols
}

/// Column names of `table` (in the connection's search path), in table order.
pub async fn table_columns(client: &Client, table: &str) -> Vec<String> {
    client
        .query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await
        .unwrap_or_else(|e| panic!("reading columns of {table}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn insert_rows(
    client: &Client,
    table: &str,
    n: i64,
    seed: i64,
    columns: Vec<(&'static str, String)>,
) -> u64 {
    let existing = table_columns(client, table).await;
    assert!(!existing.is_empty(), "table {table} not found");
    let (names, exprs): (Vec<_>, Vec<_>) = columns
        .into_iter()
        .filter(|(c, _)| existing.iter().any(|e| e == c))
        .map(|(c, e)| (format!("\"{c}\""), e))
        .unzip();
    let sql = format!(
        "INSERT INTO \"{}\" ({}) SELECT {} FROM generate_series(1::bigint, $1::bigint) AS g(i), \
         (SELECT $2::bigint AS seed) AS s",
        table.replace('"', "\"\""),
        names.join(", "),
        exprs.join(", ")
    );
    client
        .execute(&sql, &[&n, &seed])
        .await
        .unwrap_or_else(|e| panic!("generating {n} rows into {table}: {e:?}"))
}

/// Inserts `n` deterministic image rows of `seed` into `table` (one statement). Returns the
/// number inserted.
pub async fn insert_image_rows(client: &Client, table: &str, n: i64, seed: i64) -> u64 {
    insert_rows(client, table, n, seed, image_columns()).await
}

/// `meta_data` of [`insert_narrow_image_rows`]: the same cases (null every 23rd row, a short
/// description on two rows of three, `mature`, `authority_boost`, `license_url`) without the
/// ~5 KB description of every 11th row.
const NARROW_META_DATA: &str =
    "CASE WHEN i % 23 = 0 THEN NULL ELSE jsonb_strip_nulls(jsonb_build_object( \
       'description', CASE WHEN i % 3 = 0 THEN NULL ELSE 'Description of item ' || i END, \
       'mature', CASE i % 13 WHEN 0 THEN true WHEN 1 THEN false END, \
       'authority_boost', CASE i % 29 WHEN 0 THEN 150 WHEN 1 THEN 42.5 END, \
       'license_url', 'https://creativecommons.org/licenses/by/4.0/')) END";

/// Like [`insert_image_rows`] (the same identifiers, tags, URLs and edge cases) but narrower,
/// for benchmarks at millions of rows: no row carries the ~5 KB description of every 11th
/// row there. Used by `benches/copy_scale.rs`, which measures the width it gets.
pub async fn insert_narrow_image_rows(client: &Client, table: &str, n: i64, seed: i64) -> u64 {
    let columns = image_columns()
        .into_iter()
        .map(|(c, e)| match c {
            "meta_data" => (c, NARROW_META_DATA.to_string()),
            _ => (c, e),
        })
        .collect();
    insert_rows(client, table, n, seed, columns).await
}

/// Inserts `n` deterministic audio rows of `seed` into `table` (one statement).
pub async fn insert_audio_rows(client: &Client, table: &str, n: i64, seed: i64) -> u64 {
    insert_rows(client, table, n, seed, audio_columns()).await
}

async fn insert_identifiers(client: &Client, table: &str, n: i64, seed: i64, every: i64) -> u64 {
    assert!(every > 0, "every must be positive");
    let sql = format!(
        "INSERT INTO \"{}\" (identifier) SELECT {} FROM generate_series(1::bigint, $1::bigint) AS g(i), \
         (SELECT $2::bigint AS seed) AS s WHERE i % $3::bigint = 0 ON CONFLICT DO NOTHING",
        table.replace('"', "\"\""),
        identifier_sql("i", "seed")
    );
    client
        .execute(&sql, &[&n, &seed, &every])
        .await
        .unwrap_or_else(|e| panic!("marking rows in {table}: {e:?}"))
}

/// Puts the identifiers of rows `i` (1..=n, `i % every = 0`) of `seed` into a deleted table
/// (`api_deletedimage` / `api_deletedaudio`). Returns how many were added.
pub async fn mark_deleted(
    client: &Client,
    deleted_table: &str,
    n: i64,
    seed: i64,
    every: i64,
) -> u64 {
    insert_identifiers(client, deleted_table, n, seed, every).await
}

/// Same as [`mark_deleted`] for a mature table (`api_matureimage` / `api_matureaudio`).
pub async fn mark_mature(
    client: &Client,
    mature_table: &str,
    n: i64,
    seed: i64,
    every: i64,
) -> u64 {
    insert_identifiers(client, mature_table, n, seed, every).await
}
