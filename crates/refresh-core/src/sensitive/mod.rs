//! The sensitive-term decision, made in Rust exactly as the filtered index's `terms` query
//! ([`crate::es::reindex::sensitive_terms_query`]) makes it in Elasticsearch: a document is
//! sensitive when one of the (normalised) list terms equals a token of its title, its
//! description or one of its tag names as the `standard` analyzer of the `.raw` sub-fields
//! produces them ([`analyzer`]).
//!
//! The query and [`SensitiveTerms`] normalise the list with the one [`normalize_terms`], so
//! the two cannot drift apart. The `terms` query itself is not analysed: a list entry that
//! is not a single token (`"two words"`, `"a-b"`) matches nothing, here as there.

pub mod analyzer;

pub use analyzer::tokens;

use crate::document::Document;
use crate::error::{StepError, StepResult};
use crate::es::reindex::MAX_TERMS;
use std::collections::{BTreeSet, HashSet};

/// The list as the `terms` query sends it: each term trimmed and lower-cased the way the
/// analyzer lower-cases tokens (Java's simple per-character mapping), blanks dropped, sorted
/// and de-duplicated. More than [`MAX_TERMS`] terms is an error (Elasticsearch's
/// `index.max_terms_count`).
pub fn normalize_terms(terms: &[String]) -> StepResult<Vec<String>> {
    let unique: BTreeSet<String> = terms
        .iter()
        .map(|t| analyzer::lowercase(t.trim()))
        .filter(|t| !t.is_empty())
        .collect();
    if unique.len() > MAX_TERMS {
        return Err(StepError::invalid_input(format!(
            "the sensitive terms list has {} terms; Elasticsearch accepts at most {MAX_TERMS} in one query",
            unique.len()
        )));
    }
    Ok(unique.into_iter().collect())
}

/// The sensitive-terms list, ready to test documents against.
#[derive(Debug, Clone, Default)]
pub struct SensitiveTerms {
    terms: HashSet<String>,
}

impl SensitiveTerms {
    /// Normalises `list` with [`normalize_terms`] (so its errors too).
    pub fn new(list: &[String]) -> StepResult<SensitiveTerms> {
        Ok(SensitiveTerms {
            terms: normalize_terms(list)?.into_iter().collect(),
        })
    }

    /// How many distinct terms (an empty list filters nothing, like the query's `match_all`).
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The document's title, description or a tag name has a token equal to a term: the
    /// filtered reindex would leave it out.
    pub fn is_sensitive(&self, doc: &Document<'_>) -> bool {
        self.first_match(doc).is_some()
    }

    /// The first term found, for logs: `(field, term)` with `field` one of
    /// [`crate::es::reindex::SENSITIVE_FIELDS`].
    pub fn first_match(&self, doc: &Document<'_>) -> Option<(&'static str, String)> {
        if self.terms.is_empty() {
            return None;
        }
        let mut buf = String::new();
        let fields = doc
            .tags
            .iter()
            .map(|tag| ("tags.name.raw", Some(tag.name)))
            .chain([
                ("title.raw", doc.title),
                ("description.raw", doc.description),
            ]);
        for (field, text) in fields {
            if let Some(term) = text.and_then(|text| self.find_in(text, &mut buf)) {
                return Some((field, term));
            }
        }
        None
    }

    /// Some token of `text` is a term.
    pub fn matches_text(&self, text: &str) -> bool {
        self.find_in(text, &mut String::new()).is_some()
    }

    fn find_in(&self, text: &str, buf: &mut String) -> Option<String> {
        let mut found = None;
        analyzer::for_each_token(text, buf, &mut |token| {
            if self.terms.contains(token) {
                found = Some(token.to_string());
            }
            found.is_some()
        });
        found
    }
}

#[cfg(test)]
mod tests;
