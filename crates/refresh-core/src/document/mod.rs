//! Row → Elasticsearch document (DESIGN §4).
//!
//! The indexer worker reads `temp_import_<media>` in keyset pages with [`select_sql`], turns
//! each row into a [`SourceRow`] ([`SourceRow::from_row`]), maps it with [`to_document`] and
//! appends the bulk pair with [`write_bulk_action`]. Everything after `from_row` is pure.
//!
//! `Document` borrows its strings from the `SourceRow`, so converting a row allocates only
//! the few values that must change (lower-cased license, extensions, tag list).

mod fields;

use fields::lowercase;
pub use fields::*;

use crate::media::MediaType;
use crate::pg::sql::quote_ident;
use chrono::{DateTime, Utc};
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::io::Write;

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

/// `extension`: one value for images (from the URL), a list for audio (its files' types).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Extension<'a> {
    One(String),
    Many(Vec<Cow<'a, str>>),
}

/// The keys of every document, in the order they are written.
pub const COMMON_FIELDS: &[&str] = &[
    "id",
    "created_on",
    "identifier",
    "license",
    "provider",
    "source",
    "category",
    "title",
    "creator",
    "description",
    "mature",
    "tags",
    "url",
    "standardized_popularity",
    "authority_boost",
    "max_boost",
    "min_boost",
    "extension",
];
/// The keys image documents add.
pub const IMAGE_FIELDS: &[&str] = &["aspect_ratio", "size"];
/// The keys audio documents add.
pub const AUDIO_FIELDS: &[&str] = &["length", "filetype"];

/// Every key a document of `media` carries: [`COMMON_FIELDS`] and the media's own.
pub fn document_fields(media: MediaType) -> impl Iterator<Item = &'static str> {
    let own: &'static [&'static str] = match media {
        MediaType::Image => IMAGE_FIELDS,
        MediaType::Audio => AUDIO_FIELDS,
    };
    COMMON_FIELDS.iter().chain(own).copied()
}

/// The Elasticsearch document of one row.
///
/// Its JSON has every key of [`document_fields`] for its media, with `null` for an absent
/// value: the search API reads keys such as `provider` directly and fails on a missing one.
/// (Elasticsearch treats an explicit `null` as no value, `rank_feature` fields included.)
/// The other media's fields (`length` on an image, `aspect_ratio` on audio) are not written.
#[derive(Debug, Clone, PartialEq)]
pub struct Document<'a> {
    /// Which media's fields the JSON carries.
    pub media: MediaType,
    pub id: i64,
    pub created_on: Option<DateTime<Utc>>,
    pub identifier: &'a str,
    pub license: Cow<'a, str>,
    pub provider: Option<&'a str>,
    pub source: Option<&'a str>,
    pub category: Option<&'a str>,
    pub title: Option<&'a str>,
    pub creator: Option<&'a str>,
    pub description: Option<&'a str>,
    pub mature: bool,
    pub tags: Vec<Tag<'a>>,
    pub url: Option<&'a str>,
    pub standardized_popularity: Option<f32>,
    pub authority_boost: Option<f32>,
    pub max_boost: f32,
    pub min_boost: f32,
    /// Image only.
    pub aspect_ratio: Option<&'static str>,
    /// Image only.
    pub size: Option<&'static str>,
    /// Audio only.
    pub length: Option<&'static str>,
    /// Audio only.
    pub filetype: Option<&'a str>,
    pub extension: Option<Extension<'a>>,
}

impl Serialize for Document<'_> {
    /// Written field by field, straight into the output (no intermediate value), in the order
    /// of [`document_fields`].
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let own = match self.media {
            MediaType::Image => IMAGE_FIELDS.len(),
            MediaType::Audio => AUDIO_FIELDS.len(),
        };
        let mut doc = serializer.serialize_struct("Document", COMMON_FIELDS.len() + own)?;
        doc.serialize_field("id", &self.id)?;
        doc.serialize_field("created_on", &self.created_on)?;
        doc.serialize_field("identifier", self.identifier)?;
        doc.serialize_field("license", &self.license)?;
        doc.serialize_field("provider", &self.provider)?;
        doc.serialize_field("source", &self.source)?;
        doc.serialize_field("category", &self.category)?;
        doc.serialize_field("title", &self.title)?;
        doc.serialize_field("creator", &self.creator)?;
        doc.serialize_field("description", &self.description)?;
        doc.serialize_field("mature", &self.mature)?;
        doc.serialize_field("tags", &self.tags)?;
        doc.serialize_field("url", &self.url)?;
        doc.serialize_field("standardized_popularity", &self.standardized_popularity)?;
        doc.serialize_field("authority_boost", &self.authority_boost)?;
        doc.serialize_field("max_boost", &self.max_boost)?;
        doc.serialize_field("min_boost", &self.min_boost)?;
        doc.serialize_field("extension", &self.extension)?;
        match self.media {
            MediaType::Image => {
                doc.serialize_field("aspect_ratio", &self.aspect_ratio)?;
                doc.serialize_field("size", &self.size)?;
            }
            MediaType::Audio => {
                doc.serialize_field("length", &self.length)?;
                doc.serialize_field("filetype", &self.filetype)?;
            }
        }
        doc.end()
    }
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
        media,
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

#[cfg(test)]
mod tests;
