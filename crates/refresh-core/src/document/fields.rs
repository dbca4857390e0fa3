//! The derived fields of a document: boosts, size and length classes, extensions, tags,
//! each a pure function of the row's values (DESIGN §4).

use crate::tags::{tag_accuracy, TagAccuracy};
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;

/// One tag of a document: `{"name": …, "accuracy": number | null}` (both keys always written).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tag<'a> {
    pub name: &'a str,
    pub accuracy: Option<f64>,
}

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

/// `[{name, accuracy}]` from the tags column: entries without a string name are dropped; the
/// accuracy is read as the tag filter reads it ([`tag_accuracy`]: a number, or a decimal
/// numeric string such as `"0.95"` as its number), else `None`; any other key (e.g.
/// `provider`) is not indexed.
///
/// An accuracy beyond the `float` range of `tags.accuracy` (e.g. `"1e999"`) is `None`:
/// Elasticsearch would reject the whole document for it.
pub fn parse_tags(tags: Option<&Value>) -> Vec<Tag<'_>> {
    let Some(Value::Array(items)) = tags else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let name = item.get("name")?.as_str()?;
            Some(Tag {
                name,
                accuracy: document_accuracy(item.get("accuracy")),
            })
        })
        .collect()
}

/// The document's value of a tag's `accuracy`: its number when [`tag_accuracy`] reads one
/// that fits an Elasticsearch `float`.
pub fn document_accuracy(value: Option<&Value>) -> Option<f64> {
    match tag_accuracy(value) {
        TagAccuracy::Number(a) if (a as f32).is_finite() => Some(a),
        _ => None,
    }
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

pub(super) fn lowercase(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_uppercase) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}
