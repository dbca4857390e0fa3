//! Index names: the one rule for what a refresh may call an index, and how names derive
//! from a media type and a suffix.
//!
//! Every name that reaches an Elasticsearch URL path passes [`validate_index_name`]; a suffix
//! from the execution input passes [`validate_index_suffix`], which also keeps the derived
//! names inside that rule; a step that is handed an index of a media checks it with
//! [`check_media_index`], and the worker, which writes unfiltered documents, accepts only a
//! new `<media>-<suffix>` index ([`check_new_index`]).

use crate::error::{shorten, StepError, StepResult};
use crate::media::MediaType;
use chrono::{DateTime, Utc};

/// Elasticsearch refuses index names longer than this many bytes.
pub const MAX_INDEX_NAME_BYTES: usize = 255;
pub const FILTERED_SUFFIX: &str = "-filtered";

/// `<media>-<suffix>`.
pub fn index_name(media: MediaType, suffix: &str) -> String {
    format!("{}-{suffix}", media.as_str())
}

/// `<media>-<suffix>-filtered`.
pub fn filtered_index_name(media: MediaType, suffix: &str) -> String {
    format!("{}-{suffix}{FILTERED_SUFFIX}", media.as_str())
}

/// The suffix generated when the input has none: the execution start, `YYYYMMDDhhmmss`.
pub fn generated_suffix(execution_start: DateTime<Utc>) -> String {
    execution_start.format("%Y%m%d%H%M%S").to_string()
}

/// Checks an index suffix: lowercase `[a-z0-9][a-z0-9_-]*`, and the longest index name it
/// produces (`<media>-<suffix>-filtered`) within Elasticsearch's 255-byte limit. A suffix
/// ending in `filtered` is refused: `image-filtered` is an alias name, and `x-filtered`
/// would collide with suffix `x`'s filtered index.
pub fn validate_index_suffix(media: MediaType, suffix: &str) -> Result<(), StepError> {
    let fail = |why: &str| {
        Err(StepError::invalid_input(format!(
            "index_suffix {:?}: {why}",
            shorten(suffix)
        )))
    };
    let Some(first) = suffix.chars().next() else {
        return fail("must not be empty");
    };
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return fail("must start with a lowercase letter or a digit");
    }
    if let Some(bad) = suffix
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-'))
    {
        return fail(&format!(
            "contains {bad:?}; only lowercase letters, digits, '_' and '-' are allowed"
        ));
    }
    if suffix == "filtered" || suffix.ends_with(FILTERED_SUFFIX) {
        return fail("must not end in \"filtered\" (reserved for filtered indices and aliases)");
    }
    let longest = filtered_index_name(media, suffix);
    if longest.len() > MAX_INDEX_NAME_BYTES {
        return fail(&format!(
            "too long: index name {} would be {} bytes, Elasticsearch allows {MAX_INDEX_NAME_BYTES}",
            shorten(&longest),
            longest.len()
        ));
    }
    Ok(())
}

/// Index and alias names that may appear in a URL path: lower-case letters, digits and
/// `_ - + .`, not starting with `-`, `_`, `+` or `.`, at most 255 bytes. This excludes
/// wildcards, commas and `_all`, so a name can never address more than one index.
pub fn validate_index_name(name: &str) -> StepResult<()> {
    let valid_chars = name.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'+' | b'.')
    });
    let valid_start = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid_chars && valid_start && name.len() <= MAX_INDEX_NAME_BYTES {
        Ok(())
    } else {
        Err(StepError::invalid_input(format!(
            "{name:?} is not a valid index or alias name (lower-case letters, digits, '_', '-', '+', '.'; \
             starting with a letter or digit; at most 255 bytes)"
        )))
    }
}

/// The media whose index `name` would be (`<media>-…`), if any.
pub fn media_of_index(name: &str) -> Option<MediaType> {
    MediaType::ALL
        .into_iter()
        .find(|m| name.starts_with(&format!("{}-", m.as_str())))
}

/// `index` must be an index of `media` (`<media>-<suffix>[-filtered]`), never one of its
/// aliases; `field` names the input field in the error.
pub fn check_media_index(media: MediaType, index: &str, field: &str) -> StepResult<()> {
    let prefix = format!("{}-", media.as_str());
    if !index.starts_with(&prefix) || index.len() == prefix.len() || index == media.filtered_alias()
    {
        return Err(StepError::invalid_input(format!(
            "{field}: {index:?} is not a {media} index (<{media}>-<suffix>[-filtered])"
        )));
    }
    validate_index_name(index)
}

/// `index` must be a *new* index of `media`: `<media>-<suffix>` with a suffix
/// [`validate_index_suffix`] accepts — so never `<media>-<suffix>-filtered`, never the alias
/// `<media>-filtered`, and never `<media>` — and a valid index name. This is the index a
/// worker may bulk-write unfiltered documents into; that no alias points at it is checked
/// against the cluster (`es::alias::resolve_name`). Returns the suffix; `field` names the input
/// field in the error.
pub fn check_new_index<'a>(media: MediaType, index: &'a str, field: &str) -> StepResult<&'a str> {
    let refuse = |why: String| {
        Err(StepError::invalid_input(format!(
            "{field}: {:?} is not a new {media} index (<{media}>-<suffix>, not -filtered): {why}",
            shorten(index)
        )))
    };
    if let Err(e) = validate_index_name(index) {
        return refuse(e.message);
    }
    let Some(suffix) = index.strip_prefix(&format!("{}-", media.as_str())) else {
        return refuse(format!("it does not start with \"{media}-\""));
    };
    if let Err(e) = validate_index_suffix(media, suffix) {
        return refuse(e.message);
    }
    Ok(suffix)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use proptest::prelude::*;

    #[test]
    fn index_names_cannot_address_several_indices() {
        for good in [
            "image",
            "image-20240101000000",
            "audio-init-filtered",
            "t_1.x+y",
        ] {
            assert!(validate_index_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "_all", "*", "image*", "a,b", "-x", "_x", "+x", ".x", "Image", "a/b", "a b", "a?b",
        ] {
            let err = validate_index_name(bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{bad}");
        }
        assert!(validate_index_name(&"a".repeat(256)).is_err());
        assert!(validate_index_name(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn suffix_rules() {
        for ok in [
            "init",
            "20260302000405",
            "a",
            "0",
            "a-b_c",
            "x-filteredx",
            &"a".repeat(240),
        ] {
            validate_index_suffix(MediaType::Image, ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            ".",
            "..",
            "-a",
            "_a",
            "+a",
            "Init",
            "a b",
            "a/b",
            "a\\b",
            "a*",
            "a?",
            "a\"",
            "a<",
            "a>",
            "a|",
            "a,b",
            "a#",
            "a:b",
            "a.b",
            "é",
            "filtered",
            "x-filtered",
            &"a".repeat(241),
        ] {
            let err = validate_index_suffix(MediaType::Image, bad).unwrap_err();
            assert!(
                err.message.contains("index_suffix"),
                "{bad}: {}",
                err.message
            );
        }
        // 255 bytes is the limit of the longest name, the filtered one.
        let longest_ok = "a".repeat(MAX_INDEX_NAME_BYTES - "image-".len() - "-filtered".len());
        assert_eq!(
            filtered_index_name(MediaType::Image, &longest_ok).len(),
            255
        );
    }

    #[test]
    fn new_index_is_media_dash_suffix_and_nothing_else() {
        for (media, good, suffix) in [
            (MediaType::Image, "image-init", "init"),
            (MediaType::Image, "image-20260302000405", "20260302000405"),
            (MediaType::Audio, "audio-a-b_c", "a-b_c"),
            (MediaType::Image, "image-x-filteredx", "x-filteredx"),
        ] {
            assert_eq!(
                check_new_index(media, good, "target_index").unwrap(),
                suffix
            );
        }
        for (media, bad) in [
            (MediaType::Image, "image"),
            (MediaType::Image, "image-"),
            (MediaType::Image, "image-filtered"),
            (MediaType::Image, "image-init-filtered"),
            (MediaType::Image, "image-20260302000405-filtered"),
            (MediaType::Image, "audio-init"),
            (MediaType::Audio, "image-init"),
            (MediaType::Image, "image-_x"),
            (MediaType::Image, "image--x"),
            (MediaType::Image, "image-a.b"),
            (MediaType::Image, "image-a+b"),
            (MediaType::Image, "image-Init"),
            (MediaType::Image, "image-*"),
            (MediaType::Image, "image-a,b"),
            (MediaType::Image, "imageinit"),
            (MediaType::Image, ""),
        ] {
            let err = check_new_index(media, bad, "target_index").unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{bad}");
            assert!(
                err.message.starts_with("target_index: "),
                "{bad}: {}",
                err.message
            );
        }
        let long = format!("image-{}", "a".repeat(241));
        assert!(validate_index_name(&long).is_ok());
        let err = check_new_index(MediaType::Image, &long, "target_index").unwrap_err();
        assert!(err.message.contains("too long"), "{}", err.message);
    }

    /// Elasticsearch's own index-name rules (MetadataCreateIndexService.validateIndexOrAliasName
    /// plus the lowercase and length checks), written independently of the validator.
    pub(crate) fn es_accepts_index_name(name: &str) -> bool {
        const FORBIDDEN: [char; 11] = ['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#'];
        !name.is_empty()
            && name != "."
            && name != ".."
            && name.to_lowercase() == name
            && !name.starts_with(['-', '_', '+'])
            && !name.contains(FORBIDDEN)
            && !name.contains(':')
            && name.len() <= 255
    }

    proptest! {
        #[test]
        fn accepted_suffixes_make_valid_index_names(
            suffix in prop_oneof!["\\PC{0,300}", "[a-zA-Z0-9_+. :#,*?<>|/\\\\-]{0,260}", "[a-z0-9_-]{0,260}"],
            media in prop::sample::select(MediaType::ALL.to_vec())) {
            if validate_index_suffix(media, &suffix).is_ok() {
                prop_assert!(es_accepts_index_name(&suffix));
                prop_assert!(es_accepts_index_name(&index_name(media, &suffix)));
                prop_assert!(es_accepts_index_name(&filtered_index_name(media, &suffix)));
            }
        }

        #[test]
        fn new_index_names_are_exactly_the_derived_ones(
            name in prop_oneof!["\\PC{0,40}", "(image|audio)-[a-z0-9_.+-]{0,30}"],
            media in prop::sample::select(MediaType::ALL.to_vec())) {
            match check_new_index(media, &name, "target_index") {
                Ok(suffix) => {
                    prop_assert!(validate_index_suffix(media, suffix).is_ok());
                    prop_assert_eq!(index_name(media, suffix), name.clone());
                    prop_assert!(!name.ends_with("filtered"));
                }
                Err(e) => prop_assert_eq!(e.kind, ErrorKind::InvalidInput),
            }
        }

        #[test]
        fn well_formed_suffixes_are_accepted(suffix in "[a-z0-9][a-z0-9_-]{0,200}") {
            prop_assume!(!suffix.ends_with("filtered"));
            prop_assert!(validate_index_suffix(MediaType::Image, &suffix).is_ok());
        }

        #[test]
        fn forbidden_characters_are_rejected(
            prefix in "[a-z0-9]{1,20}",
            bad in prop::sample::select(vec!['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':', '.', '\t', '\n']),
            rest in "[a-z0-9_-]{0,20}",
        ) {
            let suffix = format!("{prefix}{bad}{rest}");
            prop_assert!(validate_index_suffix(MediaType::Audio, &suffix).is_err());
        }

        #[test]
        fn uppercase_is_rejected(prefix in "[a-z0-9_-]{0,20}", upper in "[A-Z]", rest in "\\PC{0,20}") {
            let suffix = format!("a{prefix}{upper}{rest}");
            prop_assert!(validate_index_suffix(MediaType::Image, &suffix).is_err());
        }

    }
}
