//! Media types and every table / index name derived from them.
//!
//! Table and index names reach SQL and Elasticsearch only through this enum, so no
//! caller-supplied string is ever spliced into SQL as an identifier.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Serialised as its lowercase name. Deserialised from that string only: serde's derive
/// would also take the externally tagged map form (`{"audio": null}`), which no caller means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    Image,
    Audio,
}

impl MediaType {
    pub const ALL: [MediaType; 2] = [MediaType::Image, MediaType::Audio];

    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Image => "image",
            MediaType::Audio => "audio",
        }
    }

    /// The live API table, e.g. `image`.
    pub fn table(self) -> &'static str {
        self.as_str()
    }

    /// The table the copy step fills and promotion swaps in, e.g. `temp_import_image`.
    pub fn temp_table(self) -> &'static str {
        match self {
            MediaType::Image => "temp_import_image",
            MediaType::Audio => "temp_import_audio",
        }
    }

    /// Rows removed from the API that a refresh must not bring back.
    pub fn deleted_table(self) -> &'static str {
        match self {
            MediaType::Image => "api_deletedimage",
            MediaType::Audio => "api_deletedaudio",
        }
    }

    /// Rows flagged mature by moderation.
    pub fn mature_table(self) -> &'static str {
        match self {
            MediaType::Image => "api_matureimage",
            MediaType::Audio => "api_matureaudio",
        }
    }

    /// The alias the API searches, e.g. `image`.
    pub fn alias(self) -> &'static str {
        self.as_str()
    }

    /// The alias of the sensitive-terms-free index, e.g. `image-filtered`.
    pub fn filtered_alias(self) -> &'static str {
        match self {
            MediaType::Image => "image-filtered",
            MediaType::Audio => "audio-filtered",
        }
    }

    /// The media whose alias (`<media>` or `<media>-filtered`) `name` is.
    pub fn of_alias(name: &str) -> Option<MediaType> {
        MediaType::ALL
            .into_iter()
            .find(|m| m.alias() == name || m.filtered_alias() == name)
    }

    /// Only `temp_import_<media>` tables may be read by a reindex worker.
    pub fn from_temp_table(name: &str) -> Option<MediaType> {
        MediaType::ALL.into_iter().find(|m| m.temp_table() == name)
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown media type {0:?}: expected \"image\" or \"audio\"")]
pub struct UnknownMediaType(pub String);

impl FromStr for MediaType {
    type Err = UnknownMediaType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "image" => Ok(MediaType::Image),
            "audio" => Ok(MediaType::Audio),
            other => Err(UnknownMediaType(other.to_string())),
        }
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = MediaType;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a media type string, \"image\" or \"audio\"")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<MediaType, E> {
                value
                    .parse()
                    .map_err(|_| E::unknown_variant(value, &["image", "audio"]))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deserialises_from_its_name_only() {
        for (value, media) in [
            (json!("image"), MediaType::Image),
            (json!("audio"), MediaType::Audio),
        ] {
            assert_eq!(serde_json::from_value::<MediaType>(value).unwrap(), media);
            assert_eq!(serde_json::to_value(media).unwrap(), json!(media.as_str()));
        }
        for bad in [
            json!({"audio": null}),
            json!({"image": []}),
            json!(["image"]),
            json!("Image"),
            json!("video"),
            json!(1),
            json!(null),
        ] {
            assert!(
                serde_json::from_value::<MediaType>(bad.clone()).is_err(),
                "{bad} must be refused"
            );
        }
        let err = serde_json::from_value::<MediaType>(json!("video")).unwrap_err();
        assert!(err.to_string().contains("`image` or `audio`"), "{err}");
    }

    #[test]
    fn names_derive_from_media_type() {
        assert_eq!(MediaType::Image.temp_table(), "temp_import_image");
        assert_eq!(MediaType::Audio.deleted_table(), "api_deletedaudio");
        assert_eq!(MediaType::Audio.filtered_alias(), "audio-filtered");
        assert_eq!(
            MediaType::from_temp_table("temp_import_audio"),
            Some(MediaType::Audio)
        );
        assert_eq!(MediaType::from_temp_table("image; drop table x"), None);
        assert!("Image".parse::<MediaType>().is_err());
    }
}
