//! Row → Elasticsearch document (DESIGN §4).
//!
//! The indexer worker reads `temp_import_<media>` in keyset pages with [`select_sql`], turns
//! each row into a [`SourceRow`] ([`SourceRow::from_row`]), maps it with [`to_document`] and
//! appends the bulk pair with [`write_bulk_action`]. Everything after `from_row` is pure.
//!
//! `Document` borrows its strings from the `SourceRow`, so converting a row allocates only
//! the few values that must change (lower-cased license, extensions, tag list).

use crate::media::MediaType;
use crate::pg::sql::quote_ident;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::io::Write;

/// Characters of `meta_data.description` kept in the document.
pub const DESCRIPTION_MAX_CHARS: usize = 2000;

/// Upper bound of `standardized_popularity` and `authority_boost`.
pub const BOOST_MAX: f32 = 100.0;

/// Images below this many pixels are `small` (640×480).
pub const SMALL_MAX_PIXELS: i64 = 640 * 480;
/// Images below this many pixels (and not small) are `medium` (1600×900).
pub const MEDIUM_MAX_PIXELS: i64 = 1600 * 900;

/// Audio shorter than this (ms) is `shortest`.
pub const SHORTEST_MAX_MS: i64 = 30_000;
/// Audio shorter than this (ms) is `short`.
pub const SHORT_MAX_MS: i64 = 2 * 60_000;
/// Audio shorter than this (ms) is `medium`; longer is `long`.
pub const MEDIUM_MAX_MS: i64 = 10 * 60_000;

/// Authority boost of curated providers.
pub const CURATED_BOOST: f32 = 85.0;
pub const CURATED_PROVIDERS: &[&str] = &["stocksnap", "rawpixel"];
/// Authority boost of cultural institutions.
pub const CULTURAL_BOOST: f32 = 90.0;
pub const CULTURAL_PROVIDERS: &[&str] = &[
    "thorvaldsensmuseum",
    "svgsilh",
    "smithsonian",
    "rijksmuseum",
    "museumsvictoria",
    "met",
    "mccordsmuseum",
    "digitaltmuseum",
    "clevelandmuseum",
    "brooklynmuseum",
];
/// Authority boost of social media providers.
pub const SOCIAL_BOOST: f32 = 75.0;
pub const SOCIAL_PROVIDERS: &[&str] = &[
    "flickr",
    "behance",
    "thingiverse",
    "sketchfab",
    "deviantart",
];

/// The columns of `temp_import_<media>` the worker needs, plus the deleted / mature flags
/// its query computes. Image and audio share the struct; the other media's columns are
/// `None`. JSON sub-fields of `meta_data` are extracted in SQL so that the (possibly large)
/// `meta_data` document is never shipped to or parsed by the worker.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceRow {
    pub id: i64,
    pub created_on: Option<DateTime<Utc>>,
    pub identifier: String,
    pub license: String,
    pub provider: Option<String>,
    pub source: Option<String>,
    pub category: Option<String>,
    pub title: Option<String>,
    pub creator: Option<String>,
    pub url: Option<String>,
    pub removed_from_source: bool,
    /// `meta_data->>'description'`.
    pub description: Option<String>,
    /// `meta_data->'mature'`.
    pub meta_mature: Option<Value>,
    /// `meta_data->'authority_boost'`.
    pub meta_authority_boost: Option<Value>,
    /// `tags` (jsonb array of `{name, accuracy?, provider?}`).
    pub tags: Option<Value>,
    /// Raw `standardized_popularity` (0–1 in the catalog).
    pub standardized_popularity: Option<f64>,
    pub filetype: Option<String>,
    /// Image only.
    pub width: Option<i32>,
    /// Image only.
    pub height: Option<i32>,
    /// Audio only, milliseconds.
    pub duration: Option<i32>,
    /// Audio only (jsonb array of `{url, filesize, bit_rate, sample_rate, filetype}`).
    pub alt_files: Option<Value>,
    /// The identifier is in `api_deleted<media>`.
    pub deleted: bool,
    /// The identifier is in `api_mature<media>`.
    pub mature_listed: bool,
}

/// The keyset-page query over `temp_import_<media>` for a worker range.
///
/// Parameters (all `i64`): `$1` the cursor (exclusive: the last id of the previous page, or
/// `start_id - 1` for the first page), `$2` the range end (inclusive), `$3` the page size.
/// Columns match [`SourceRow::from_row`]; the next cursor is the last row's `id`.
pub fn select_sql(media: MediaType) -> String {
    let media_columns = match media {
        MediaType::Image => {
            "t.width, t.height, NULL::integer AS duration, NULL::jsonb AS alt_files"
        }
        MediaType::Audio => {
            "NULL::integer AS width, NULL::integer AS height, t.duration, t.alt_files"
        }
    };
    format!(
        "SELECT t.id::bigint AS id, t.created_on, t.identifier::text AS identifier, \
         t.license::text AS license, t.provider::text AS provider, t.source::text AS source, \
         t.category::text AS category, t.title, t.creator, t.url, \
         t.removed_from_source, \
         t.meta_data->>'description' AS description, \
         t.meta_data->'mature' AS meta_mature, \
         t.meta_data->'authority_boost' AS meta_authority_boost, \
         t.tags, t.standardized_popularity, t.filetype::text AS filetype, {media_columns}, \
         EXISTS (SELECT 1 FROM {deleted} d WHERE d.identifier = t.identifier) AS deleted, \
         EXISTS (SELECT 1 FROM {mature} m WHERE m.identifier = t.identifier) AS mature_listed \
         FROM {table} t \
         WHERE t.id > $1::bigint AND t.id <= $2::bigint \
         ORDER BY t.id \
         LIMIT $3::bigint",
        deleted = quote_ident(media.deleted_table()),
        mature = quote_ident(media.mature_table()),
        table = quote_ident(media.temp_table()),
    )
}

impl SourceRow {
    /// Reads a row of [`select_sql`]'s query.
    pub fn from_row(row: &tokio_postgres::Row) -> Result<SourceRow, tokio_postgres::Error> {
        Ok(SourceRow {
            id: row.try_get("id")?,
            created_on: row.try_get("created_on")?,
            identifier: row.try_get("identifier")?,
            license: row.try_get("license")?,
            provider: row.try_get("provider")?,
            source: row.try_get("source")?,
            category: row.try_get("category")?,
            title: row.try_get("title")?,
            creator: row.try_get("creator")?,
            url: row.try_get("url")?,
            removed_from_source: row.try_get("removed_from_source")?,
            description: row.try_get("description")?,
            meta_mature: row.try_get("meta_mature")?,
            meta_authority_boost: row.try_get("meta_authority_boost")?,
            tags: row.try_get("tags")?,
            standardized_popularity: row.try_get("standardized_popularity")?,
            filetype: row.try_get("filetype")?,
            width: row.try_get("width")?,
            height: row.try_get("height")?,
            duration: row.try_get("duration")?,
            alt_files: row.try_get("alt_files")?,
            deleted: row.try_get("deleted")?,
            mature_listed: row.try_get("mature_listed")?,
        })
    }
}

/// One tag of a document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tag<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
}

/// `extension`: one value for images (from the URL), a list for audio (its files' types).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Extension<'a> {
    One(String),
    Many(Vec<Cow<'a, str>>),
}

/// The Elasticsearch document of one row. Absent values are omitted from the JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document<'a> {
    pub id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_on: Option<DateTime<Utc>>,
    pub identifier: &'a str,
    pub license: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creator: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    pub mature: bool,
    pub tags: Vec<Tag<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standardized_popularity: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority_boost: Option<f32>,
    pub max_boost: f32,
    pub min_boost: f32,
    // Image only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<&'static str>,
    // Audio only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filetype: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<Extension<'a>>,
}

/// Maps a row to its document; `None` when the row must not be indexed (removed from its
/// source, or listed in `api_deleted<media>`).
pub fn to_document(media: MediaType, row: &SourceRow) -> Option<Document<'_>> {
    if row.removed_from_source || row.deleted {
        return None;
    }
    let popularity = standardized_popularity(row.standardized_popularity);
    let authority = authority_boost(row.meta_authority_boost.as_ref(), row.provider.as_deref());
    let (max_boost, min_boost) = boost_bounds(popularity, authority);
    let mut doc = Document {
        id: row.id,
        created_on: row.created_on,
        identifier: &row.identifier,
        license: lowercase(&row.license),
        provider: row.provider.as_deref(),
        source: row.source.as_deref(),
        category: row.category.as_deref(),
        title: row.title.as_deref(),
        creator: row.creator.as_deref(),
        description: row.description.as_deref().map(truncate_description),
        mature: row.mature_listed || is_mature_flag(row.meta_mature.as_ref()),
        tags: parse_tags(row.tags.as_ref()),
        url: row.url.as_deref(),
        standardized_popularity: popularity,
        authority_boost: authority,
        max_boost,
        min_boost,
        aspect_ratio: None,
        size: None,
        length: None,
        filetype: None,
        extension: None,
    };
    match media {
        MediaType::Image => {
            doc.aspect_ratio = aspect_ratio(row.width, row.height);
            doc.size = image_size(row.width, row.height);
            doc.extension = row
                .url
                .as_deref()
                .and_then(url_extension)
                .map(Extension::One);
        }
        MediaType::Audio => {
            doc.length = audio_length(row.duration);
            doc.filetype = row.filetype.as_deref();
            let extensions = audio_extensions(row.filetype.as_deref(), row.alt_files.as_ref());
            doc.extension = (!extensions.is_empty()).then_some(Extension::Many(extensions));
        }
    }
    Some(doc)
}

/// Appends the bulk `index` action and the document as two NDJSON lines. On error `out` is
/// left as it was.
pub fn write_bulk_action(doc: &Document<'_>, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let start = out.len();
    let result = (|| {
        // `write!` into a Vec cannot fail; the id is a plain integer, no escaping needed.
        let _ = writeln!(out, "{{\"index\":{{\"_id\":\"{}\"}}}}", doc.id);
        serde_json::to_writer(&mut *out, doc)?;
        out.push(b'\n');
        Ok(())
    })();
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// A `rank_feature` value Elasticsearch accepts: finite and at least the smallest positive
/// normal `f32` (Lucene rejects 0, negatives and subnormals, item by item in a 200 bulk
/// response). Anything else is absent.
pub fn rank_feature(value: f32) -> Option<f32> {
    (value.is_finite() && value >= f32::MIN_POSITIVE).then_some(value)
}

/// Raw popularity × 100, clamped to 0–100; absent when null, 0, NaN or too small to index.
pub fn standardized_popularity(raw: Option<f64>) -> Option<f32> {
    let raw = raw?;
    if raw.is_nan() {
        return None;
    }
    rank_feature((raw * 100.0).clamp(0.0, BOOST_MAX as f64) as f32)
}

/// `meta_data.authority_boost` (a number or numeric string) clamped to 0–100; when it is
/// missing or not a number, the provider's boost.
pub fn authority_boost(meta: Option<&Value>, provider: Option<&str>) -> Option<f32> {
    let explicit = match meta {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match explicit.filter(|v| !v.is_nan()) {
        Some(value) => rank_feature(value.clamp(0.0, BOOST_MAX as f64) as f32),
        None => provider.and_then(provider_boost),
    }
}

/// The authority boost of a provider by the lists of DESIGN §4.
pub fn provider_boost(provider: &str) -> Option<f32> {
    if CULTURAL_PROVIDERS.contains(&provider) {
        Some(CULTURAL_BOOST)
    } else if CURATED_PROVIDERS.contains(&provider) {
        Some(CURATED_BOOST)
    } else if SOCIAL_PROVIDERS.contains(&provider) {
        Some(SOCIAL_BOOST)
    } else {
        None
    }
}

/// `(max_boost, min_boost)`: max / min of popularity-or-1 and authority-or-1.
pub fn boost_bounds(popularity: Option<f32>, authority: Option<f32>) -> (f32, f32) {
    let p = popularity.unwrap_or(1.0);
    let a = authority.unwrap_or(1.0);
    (p.max(a), p.min(a))
}

/// The first [`DESCRIPTION_MAX_CHARS`] characters (not bytes) of a description.
pub fn truncate_description(description: &str) -> &str {
    match description.char_indices().nth(DESCRIPTION_MAX_CHARS) {
        Some((byte_index, _)) => &description[..byte_index],
        None => description,
    }
}

/// `meta_data.mature` is true (a JSON `true`, or the string "true" in any case).
pub fn is_mature_flag(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// `[{name, accuracy?}]` from the tags column: entries without a string name are dropped,
/// a non-numeric accuracy is left out, any other key (e.g. `provider`) is not indexed.
pub fn parse_tags(tags: Option<&Value>) -> Vec<Tag<'_>> {
    let Some(Value::Array(items)) = tags else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let name = item.get("name")?.as_str()?;
            let accuracy = item
                .get("accuracy")
                .and_then(Value::as_f64)
                .filter(|a| a.is_finite());
            Some(Tag { name, accuracy })
        })
        .collect()
}

/// `tall`, `wide` or `square`; absent when a dimension is unknown or not positive.
pub fn aspect_ratio(width: Option<i32>, height: Option<i32>) -> Option<&'static str> {
    let (width, height) = positive_dimensions(width, height)?;
    Some(match height.cmp(&width) {
        std::cmp::Ordering::Greater => "tall",
        std::cmp::Ordering::Less => "wide",
        std::cmp::Ordering::Equal => "square",
    })
}

/// `small` (< 640×480 pixels), `medium` (< 1600×900) or `large`; absent when a dimension is
/// unknown or not positive.
pub fn image_size(width: Option<i32>, height: Option<i32>) -> Option<&'static str> {
    let (width, height) = positive_dimensions(width, height)?;
    let pixels = i64::from(width) * i64::from(height);
    Some(if pixels < SMALL_MAX_PIXELS {
        "small"
    } else if pixels < MEDIUM_MAX_PIXELS {
        "medium"
    } else {
        "large"
    })
}

fn positive_dimensions(width: Option<i32>, height: Option<i32>) -> Option<(i32, i32)> {
    match (width, height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => Some((w, h)),
        _ => None,
    }
}

/// `shortest` (< 30 s), `short` (< 2 min), `medium` (< 10 min) or `long`; absent when the
/// duration (ms) is unknown or not positive.
pub fn audio_length(duration_ms: Option<i32>) -> Option<&'static str> {
    let ms = i64::from(duration_ms?);
    if ms <= 0 {
        return None;
    }
    Some(if ms < SHORTEST_MAX_MS {
        "shortest"
    } else if ms < SHORT_MAX_MS {
        "short"
    } else if ms < MEDIUM_MAX_MS {
        "medium"
    } else {
        "long"
    })
}

/// The lower-cased extension of a URL's file name: the part after the last `.` of the
/// last path segment, ignoring query and fragment. Absent when there is none (no dot, a dot
/// only in the host, an empty extension).
pub fn url_extension(url: &str) -> Option<String> {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let without_query = &url[..end];
    // Past `scheme://host`, so that "https://example.com" has no extension.
    let path = match without_query.find("://") {
        Some(i) => {
            let after_scheme = &without_query[i + 3..];
            &after_scheme[after_scheme.find('/')?..]
        }
        None => without_query,
    };
    let file_name = path.rsplit('/').next().unwrap_or(path);
    let (_, extension) = file_name.rsplit_once('.')?;
    if extension.is_empty() {
        return None;
    }
    Some(extension.to_lowercase())
}

/// Audio extensions (DESIGN §4): the `alt_files[].filetype`s, lower-cased and without
/// duplicates; when there are none, the main `filetype`.
pub fn audio_extensions<'a>(
    filetype: Option<&'a str>,
    alt_files: Option<&'a Value>,
) -> Vec<Cow<'a, str>> {
    let alt = match alt_files {
        Some(Value::Array(files)) => files.as_slice(),
        _ => &[],
    };
    let mut extensions = distinct_lowercase(
        alt.iter()
            .filter_map(|f| f.get("filetype").and_then(Value::as_str)),
    );
    if extensions.is_empty() {
        extensions = distinct_lowercase(filetype.into_iter());
    }
    extensions
}

fn distinct_lowercase<'a>(candidates: impl Iterator<Item = &'a str>) -> Vec<Cow<'a, str>> {
    let mut distinct: Vec<Cow<'a, str>> = Vec::new();
    for candidate in candidates.map(str::trim).filter(|c| !c.is_empty()) {
        let candidate = lowercase(candidate);
        if !distinct.contains(&candidate) {
            distinct.push(candidate);
        }
    }
    distinct
}

fn lowercase(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_uppercase) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn image_row() -> SourceRow {
        SourceRow {
            id: 42,
            created_on: Some("2024-05-01T12:30:00Z".parse().unwrap()),
            identifier: "8b7a2d2e-2b8e-4cf1-9f55-6c1b6a1f3f10".into(),
            license: "BY-SA".into(),
            provider: Some("flickr".into()),
            source: Some("flickr".into()),
            category: Some("photograph".into()),
            title: Some("Running animals".into()),
            creator: Some("Ada".into()),
            url: Some("https://live.staticflickr.com/1/photo.JPG?size=large".into()),
            description: Some("A herd".into()),
            tags: Some(
                json!([{"name": "cat", "accuracy": 0.97, "provider": "clarifai"}, {"name": "dog"}]),
            ),
            standardized_popularity: Some(0.5),
            filetype: Some("jpg".into()),
            width: Some(1920),
            height: Some(1080),
            ..SourceRow::default()
        }
    }

    fn audio_row() -> SourceRow {
        SourceRow {
            id: 7,
            identifier: "0d1f0c4e-9a3b-4a55-8d43-2b3b3f2f6a11".into(),
            license: "cc0".into(),
            provider: Some("freesound".into()),
            source: Some("freesound".into()),
            url: Some("https://freesound.org/data/previews/1/1.mp3".into()),
            filetype: Some("mp3".into()),
            duration: Some(95_000),
            alt_files: Some(
                json!([{"url": "a.ogg", "filetype": "ogg"}, {"url": "b.MP3", "filetype": "MP3"}]),
            ),
            ..SourceRow::default()
        }
    }

    #[test]
    fn image_document_has_every_field() {
        let row = image_row();
        let doc = to_document(MediaType::Image, &row).unwrap();
        let value = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            value,
            json!({
                "id": 42,
                "created_on": "2024-05-01T12:30:00Z",
                "identifier": "8b7a2d2e-2b8e-4cf1-9f55-6c1b6a1f3f10",
                "license": "by-sa",
                "provider": "flickr",
                "source": "flickr",
                "category": "photograph",
                "title": "Running animals",
                "creator": "Ada",
                "description": "A herd",
                "mature": false,
                "tags": [{"name": "cat", "accuracy": 0.97}, {"name": "dog"}],
                "url": "https://live.staticflickr.com/1/photo.JPG?size=large",
                "standardized_popularity": 50.0,
                "authority_boost": 75.0,
                "max_boost": 75.0,
                "min_boost": 50.0,
                "aspect_ratio": "wide",
                "size": "large",
                "extension": "jpg"
            })
        );
    }

    #[test]
    fn audio_document_has_length_filetype_and_extensions() {
        let row = audio_row();
        let value = serde_json::to_value(to_document(MediaType::Audio, &row).unwrap()).unwrap();
        assert_eq!(value["length"], "short");
        assert_eq!(value["filetype"], "mp3");
        assert_eq!(value["extension"], json!(["ogg", "mp3"]));
        assert_eq!(value["license"], "cc0");
        // No popularity, no authority: both bounds fall back to 1.
        assert!(value.get("standardized_popularity").is_none());
        assert!(value.get("authority_boost").is_none());
        assert_eq!(value["max_boost"], 1.0);
        assert_eq!(value["min_boost"], 1.0);
        for image_field in ["aspect_ratio", "size"] {
            assert!(value.get(image_field).is_none(), "{image_field} on audio");
        }
        assert_eq!(value["tags"], json!([]));
    }

    #[test]
    fn image_document_has_no_audio_fields() {
        let value =
            serde_json::to_value(to_document(MediaType::Image, &image_row()).unwrap()).unwrap();
        for audio_field in ["length", "filetype"] {
            assert!(value.get(audio_field).is_none(), "{audio_field} on image");
        }
    }

    #[test]
    fn removed_or_deleted_rows_are_skipped() {
        let mut row = image_row();
        assert!(to_document(MediaType::Image, &row).is_some());
        row.removed_from_source = true;
        assert!(to_document(MediaType::Image, &row).is_none());
        row.removed_from_source = false;
        row.deleted = true;
        assert!(to_document(MediaType::Audio, &row).is_none());
    }

    #[test]
    fn mature_from_meta_data_or_mature_table() {
        let mut row = image_row();
        assert!(!to_document(MediaType::Image, &row).unwrap().mature);
        row.mature_listed = true;
        assert!(to_document(MediaType::Image, &row).unwrap().mature);
        row.mature_listed = false;
        row.meta_mature = Some(json!(true));
        assert!(to_document(MediaType::Image, &row).unwrap().mature);
        assert!(is_mature_flag(Some(&json!("True"))));
        assert!(!is_mature_flag(Some(&json!(false))));
        assert!(!is_mature_flag(Some(&json!("no"))));
        assert!(!is_mature_flag(Some(&json!(1))));
        assert!(!is_mature_flag(None));
    }

    #[test]
    fn popularity_is_scaled_clamped_and_absent_when_zero() {
        assert_eq!(standardized_popularity(Some(0.5)), Some(50.0));
        assert_eq!(standardized_popularity(Some(3.0)), Some(100.0));
        assert_eq!(standardized_popularity(Some(-0.2)), None);
        assert_eq!(standardized_popularity(Some(0.0)), None);
        assert_eq!(standardized_popularity(None), None);
        assert_eq!(standardized_popularity(Some(f64::NAN)), None);
        assert_eq!(standardized_popularity(Some(f64::INFINITY)), Some(100.0));
        // × 100 is still below the smallest normal f32.
        assert_eq!(standardized_popularity(Some(1e-41)), None);
        assert_eq!(standardized_popularity(Some(1e-30)), Some(1e-28));
    }

    #[test]
    fn rank_feature_rejects_zero_subnormal_and_non_finite() {
        assert_eq!(rank_feature(0.0), None);
        assert_eq!(rank_feature(-1.0), None);
        assert_eq!(rank_feature(1.0e-39), None); // subnormal
        assert_eq!(rank_feature(f32::MIN_POSITIVE), Some(f32::MIN_POSITIVE));
        assert_eq!(rank_feature(f32::NAN), None);
        assert_eq!(rank_feature(f32::INFINITY), None);
        assert_eq!(rank_feature(1.5), Some(1.5));
    }

    #[test]
    fn authority_boost_from_meta_data_then_provider() {
        assert_eq!(
            authority_boost(Some(&json!(40)), Some("flickr")),
            Some(40.0)
        );
        assert_eq!(authority_boost(Some(&json!("12.5")), None), Some(12.5));
        assert_eq!(authority_boost(Some(&json!(250)), None), Some(100.0));
        assert_eq!(authority_boost(Some(&json!(-3)), Some("flickr")), None);
        assert_eq!(authority_boost(Some(&json!(0)), Some("met")), None);
        assert_eq!(authority_boost(Some(&json!(1e-45)), None), None);
        // Not a number: fall back to the provider.
        assert_eq!(
            authority_boost(Some(&json!("high")), Some("met")),
            Some(90.0)
        );
        assert_eq!(
            authority_boost(Some(&json!(null)), Some("rawpixel")),
            Some(85.0)
        );
        assert_eq!(authority_boost(None, Some("stocksnap")), Some(85.0));
        assert_eq!(authority_boost(None, Some("behance")), Some(75.0));
        assert_eq!(authority_boost(None, Some("wikimedia")), None);
        assert_eq!(authority_boost(None, None), None);
    }

    #[test]
    fn every_listed_provider_has_its_boost() {
        for p in CURATED_PROVIDERS {
            assert_eq!(provider_boost(p), Some(85.0), "{p}");
        }
        for p in CULTURAL_PROVIDERS {
            assert_eq!(provider_boost(p), Some(90.0), "{p}");
        }
        for p in SOCIAL_PROVIDERS {
            assert_eq!(provider_boost(p), Some(75.0), "{p}");
        }
        assert_eq!(provider_boost("Flickr"), None);
        assert_eq!(
            CURATED_PROVIDERS.len() + CULTURAL_PROVIDERS.len() + SOCIAL_PROVIDERS.len(),
            17
        );
    }

    #[test]
    fn boost_bounds_use_one_for_absent_values() {
        assert_eq!(boost_bounds(None, None), (1.0, 1.0));
        assert_eq!(boost_bounds(Some(50.0), None), (50.0, 1.0));
        assert_eq!(boost_bounds(Some(0.5), Some(90.0)), (90.0, 0.5));
        assert_eq!(boost_bounds(None, Some(0.25)), (1.0, 0.25));
    }

    #[test]
    fn description_is_cut_at_2000_characters_not_bytes() {
        let long: String = "é".repeat(2500);
        let cut = truncate_description(&long);
        assert_eq!(cut.chars().count(), 2000);
        assert_eq!(cut.len(), 4000);
        let exact = "a".repeat(2000);
        assert_eq!(truncate_description(&exact), exact);
        assert_eq!(truncate_description(""), "");
        let emoji = "🦀".repeat(2001);
        assert_eq!(truncate_description(&emoji).chars().count(), 2000);
    }

    #[test]
    fn tags_keep_name_and_numeric_accuracy_only() {
        let tags = json!([
            {"name": "a", "accuracy": 0.95, "provider": "x"},
            {"name": "b", "accuracy": "high"},
            {"name": 3},
            {"accuracy": 0.99},
            "loose",
            {"name": "c"}
        ]);
        let parsed = parse_tags(Some(&tags));
        assert_eq!(
            parsed,
            vec![
                Tag {
                    name: "a",
                    accuracy: Some(0.95)
                },
                Tag {
                    name: "b",
                    accuracy: None
                },
                Tag {
                    name: "c",
                    accuracy: None
                },
            ]
        );
        assert!(parse_tags(Some(&json!({"name": "x"}))).is_empty());
        assert!(parse_tags(Some(&Value::Null)).is_empty());
        assert!(parse_tags(None).is_empty());
    }

    #[test]
    fn aspect_ratio_and_size_thresholds() {
        assert_eq!(aspect_ratio(Some(100), Some(200)), Some("tall"));
        assert_eq!(aspect_ratio(Some(200), Some(100)), Some("wide"));
        assert_eq!(aspect_ratio(Some(5), Some(5)), Some("square"));
        assert_eq!(aspect_ratio(None, Some(5)), None);
        assert_eq!(aspect_ratio(Some(0), Some(5)), None);

        assert_eq!(image_size(Some(639), Some(480)), Some("small"));
        assert_eq!(image_size(Some(640), Some(480)), Some("medium"));
        // Pixel count, not each side: 480×640 is the same area.
        assert_eq!(image_size(Some(480), Some(640)), Some("medium"));
        assert_eq!(image_size(Some(1599), Some(900)), Some("medium"));
        assert_eq!(image_size(Some(1600), Some(900)), Some("large"));
        assert_eq!(image_size(Some(i32::MAX), Some(i32::MAX)), Some("large"));
        assert_eq!(image_size(Some(1600), None), None);
        assert_eq!(image_size(Some(-1), Some(900)), None);
    }

    #[test]
    fn length_buckets() {
        assert_eq!(audio_length(Some(1)), Some("shortest"));
        assert_eq!(audio_length(Some(29_999)), Some("shortest"));
        assert_eq!(audio_length(Some(30_000)), Some("short"));
        assert_eq!(audio_length(Some(119_999)), Some("short"));
        assert_eq!(audio_length(Some(120_000)), Some("medium"));
        assert_eq!(audio_length(Some(599_999)), Some("medium"));
        assert_eq!(audio_length(Some(600_000)), Some("long"));
        assert_eq!(audio_length(Some(0)), None);
        assert_eq!(audio_length(Some(-5)), None);
        assert_eq!(audio_length(None), None);
    }

    #[test]
    fn url_extensions() {
        let cases = [
            ("https://x.org/a/photo.jpg", Some("jpg")),
            ("https://x.org/a/photo.JPEG", Some("jpeg")),
            ("https://x.org/a/photo.png?w=100&h=2.5", Some("png")),
            ("https://x.org/a/photo.gif#frag.x", Some("gif")),
            ("https://x.org/a/archive.tar.gz", Some("gz")),
            ("https://x.org/a/photo", None),
            ("https://x.org/v1.2/photo", None),
            ("https://x.org/a/photo.", None),
            ("https://example.com", None),
            ("https://example.com/", None),
            ("https://example.com?x=a.b", None),
            ("photo.webp", Some("webp")),
            ("/local/dir.d/photo", None),
            ("", None),
        ];
        for (url, expected) in cases {
            assert_eq!(url_extension(url).as_deref(), expected, "{url}");
        }
    }

    #[test]
    fn audio_extensions_come_from_alt_files_else_filetype() {
        let alt = json!([{"filetype": "OGG"}, {"filetype": "mp3"}, {"url": "x"}, {"filetype": ""}, {"filetype": 5}, {"filetype": "ogg"}]);
        assert_eq!(
            audio_extensions(Some("wav"), Some(&alt)),
            vec!["ogg", "mp3"]
        );
        assert_eq!(audio_extensions(None, Some(&alt)), vec!["ogg", "mp3"]);
        assert_eq!(
            audio_extensions(Some("WAV"), Some(&json!([{"filetype": ""}]))),
            vec!["wav"]
        );
        assert_eq!(audio_extensions(Some("wav"), None), vec!["wav"]);
        assert_eq!(
            audio_extensions(Some("wav"), Some(&json!({"filetype": "x"}))),
            vec!["wav"]
        );
        assert!(audio_extensions(None, None).is_empty());
        let row = SourceRow {
            filetype: None,
            alt_files: None,
            ..audio_row()
        };
        let doc = to_document(MediaType::Audio, &row).unwrap();
        assert!(serde_json::to_value(&doc)
            .unwrap()
            .get("extension")
            .is_none());
    }

    #[test]
    fn bulk_action_is_two_ndjson_lines() {
        let row = image_row();
        let doc = to_document(MediaType::Image, &row).unwrap();
        let mut out = b"previous\n".to_vec();
        write_bulk_action(&doc, &mut out).unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "previous");
        assert_eq!(lines[1], r#"{"index":{"_id":"42"}}"#);
        let body: Value = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(body, serde_json::to_value(&doc).unwrap());
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn select_sql_names_only_the_media_tables() {
        let sql = select_sql(MediaType::Audio);
        assert!(sql.contains("FROM \"temp_import_audio\" t"));
        assert!(sql.contains("\"api_deletedaudio\""));
        assert!(sql.contains("\"api_matureaudio\""));
        assert!(sql.contains("t.alt_files"));
        assert!(!sql.contains("image"));
        let sql = select_sql(MediaType::Image);
        assert!(sql.contains("t.width, t.height"));
        assert!(!sql.contains("audio"));
    }

    fn arb_json_number() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
                .map(Value::Number)),
            any::<i64>().prop_map(|i| json!(i)),
            (-1000.0f64..1000.0).prop_map(|f| json!(f.to_string())),
            Just(Value::Null),
            ".*".prop_map(Value::String),
        ]
    }

    proptest! {
        #[test]
        fn popularity_is_absent_or_indexable(raw in proptest::option::of(any::<f64>())) {
            if let Some(p) = standardized_popularity(raw) {
                prop_assert!((f32::MIN_POSITIVE..=100.0).contains(&p));
            } else if let Some(r) = raw {
                // Only non-positive, NaN or vanishingly small values are dropped.
                prop_assert!(r.is_nan() || r * 100.0 < f32::MIN_POSITIVE as f64 * 1.0000001);
            }
        }

        #[test]
        fn authority_is_absent_or_indexable(meta in proptest::option::of(arb_json_number()),
                                            provider in proptest::option::of("[a-z]{0,12}")) {
            if let Some(a) = authority_boost(meta.as_ref(), provider.as_deref()) {
                prop_assert!((f32::MIN_POSITIVE..=100.0).contains(&a));
            }
        }

        #[test]
        fn boost_bounds_are_ordered_and_positive(p in proptest::option::of(any::<f64>()),
                                                 a in proptest::option::of(arb_json_number())) {
            let popularity = standardized_popularity(p);
            let authority = authority_boost(a.as_ref(), None);
            let (max, min) = boost_bounds(popularity, authority);
            prop_assert!(min <= max);
            prop_assert!(rank_feature(min).is_some() && rank_feature(max).is_some());
            prop_assert!(max == popularity.unwrap_or(1.0) || max == authority.unwrap_or(1.0));
        }

        #[test]
        fn description_is_a_prefix_of_at_most_2000_chars(s in ".{0,2300}") {
            let cut = truncate_description(&s);
            prop_assert!(s.starts_with(cut));
            let n = s.chars().count();
            prop_assert_eq!(cut.chars().count(), n.min(DESCRIPTION_MAX_CHARS));
        }

        #[test]
        fn extension_never_holds_separators(url in "[a-zA-Z0-9:/.?#=&_-]{0,60}") {
            if let Some(ext) = url_extension(&url) {
                prop_assert!(!ext.is_empty());
                prop_assert!(!ext.contains(['/', '?', '#', '.']));
                prop_assert_eq!(ext.to_lowercase(), ext.clone());
                let lower = url.to_lowercase();
                let dotted = format!(".{}", ext);
                prop_assert!(lower.contains(&dotted));
            }
        }

        #[test]
        fn size_grows_with_area(w in 1i32..5000, h in 1i32..5000, dw in 0i32..500, dh in 0i32..500) {
            let rank = |s: Option<&str>| match s { Some("small") => 0, Some("medium") => 1, Some("large") => 2, _ => 99 };
            prop_assert!(rank(image_size(Some(w), Some(h))) <= rank(image_size(Some(w + dw), Some(h + dh))));
            prop_assert_eq!(aspect_ratio(Some(w), Some(h)) == Some("square"), w == h);
            prop_assert_eq!(image_size(Some(w), Some(h)), image_size(Some(h), Some(w)));
        }

        #[test]
        fn length_grows_with_duration(d in 1i32..i32::MAX, extra in 0i32..1_000_000) {
            let rank = |s: Option<&str>| match s { Some("shortest") => 0, Some("short") => 1, Some("medium") => 2, Some("long") => 3, _ => 99 };
            let longer = d.saturating_add(extra);
            prop_assert!(rank(audio_length(Some(d))) <= rank(audio_length(Some(longer))));
        }

        #[test]
        fn skipped_exactly_when_removed_or_deleted(removed in any::<bool>(), deleted in any::<bool>(),
                                                    audio in any::<bool>()) {
            let media = if audio { MediaType::Audio } else { MediaType::Image };
            let row = SourceRow { removed_from_source: removed, deleted, ..image_row() };
            prop_assert_eq!(to_document(media, &row).is_none(), removed || deleted);
        }

        #[test]
        fn bulk_pair_round_trips(id in any::<i64>(), title in proptest::option::of(".{0,50}"),
                                 license in "[A-Za-z-]{1,10}", pop in proptest::option::of(any::<f64>())) {
            let row = SourceRow { id, title, license: license.clone(), standardized_popularity: pop, ..image_row() };
            let doc = to_document(MediaType::Image, &row).unwrap();
            let mut out = Vec::new();
            write_bulk_action(&doc, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            let mut lines = text.split_terminator('\n');
            let action: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
            prop_assert_eq!(&action["index"]["_id"], &json!(id.to_string()));
            let body: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
            prop_assert!(lines.next().is_none());
            prop_assert_eq!(&body["id"], &json!(id));
            prop_assert_eq!(body["license"].as_str().unwrap(), license.to_lowercase());
            if let Some(p) = body.get("standardized_popularity") {
                let p = p.as_f64().unwrap() as f32;
                prop_assert!((f32::MIN_POSITIVE..=100.0).contains(&p));
            }
        }
    }
}
