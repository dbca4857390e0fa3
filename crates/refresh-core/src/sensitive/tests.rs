use super::*;
use crate::document::{to_document, SourceRow};
use crate::es::reindex::sensitive_terms_query;
use crate::media::MediaType;
use proptest::prelude::*;
use serde_json::json;

fn terms(xs: &[&str]) -> SensitiveTerms {
    SensitiveTerms::new(&xs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

fn row(title: Option<&str>, description: Option<&str>, tags: serde_json::Value) -> SourceRow {
    SourceRow {
        id: 1,
        identifier: "00000000-0000-0000-0000-000000000001".into(),
        license: "by".into(),
        title: title.map(str::to_string),
        description: description.map(str::to_string),
        tags: Some(tags),
        ..SourceRow::default()
    }
}

#[test]
fn a_term_equal_to_a_token_of_any_field_is_sensitive() {
    let list = terms(&["BadWord", " ugly "]);
    let cases = [
        (
            row(Some("A badword here"), None, json!([])),
            Some("title.raw"),
        ),
        (
            row(None, Some("so UGLY."), json!([])),
            Some("description.raw"),
        ),
        (
            row(None, None, json!([{"name": "tree"}, {"name": "Badword"}])),
            Some("tags.name.raw"),
        ),
        // Longer words and stems are other tokens.
        (
            row(Some("badwords uglyness"), Some("badword-ish"), json!([])),
            Some("description.raw"),
        ),
        (row(Some("badwords uglyness"), None, json!([])), None),
        (row(None, None, json!(null)), None),
    ];
    for (row, expected) in cases {
        let doc = to_document(MediaType::Image, &row).unwrap();
        assert_eq!(
            list.first_match(&doc).map(|(field, _)| field),
            expected,
            "{row:?}"
        );
        assert_eq!(list.is_sensitive(&doc), expected.is_some());
    }
}

#[test]
fn entries_that_are_not_one_token_never_match() {
    // The terms query is not analysed: "two words" is compared with single tokens.
    let list = terms(&["two words", "a-b"]);
    assert!(!list.matches_text("two words a-b"));
    assert!(terms(&["a.b"]).matches_text("see a.b now"));
}

#[test]
fn an_empty_list_matches_nothing() {
    let list = terms(&["", "   "]);
    assert!(list.is_empty());
    assert!(!list.matches_text("anything"));
}

#[test]
fn list_entries_are_normalised_like_the_query() {
    let list = terms(&["İSTANBUL", "ΟΔΟΣ"]);
    assert_eq!(list.len(), 2);
    assert!(list.matches_text("İstanbul"));
    assert!(list.matches_text("istanbul"));
    assert!(list.matches_text("Οδοσ"));
    // The final sigma is another letter: "οδος" has the token "οδος".
    assert!(!list.matches_text("οδος"));
}

#[test]
fn too_many_terms_are_refused_like_the_query() {
    let many: Vec<String> = (0..=MAX_TERMS).map(|i| format!("t{i}")).collect();
    assert!(SensitiveTerms::new(&many).is_err());
}

proptest! {
    /// The matcher holds exactly the terms the query sends.
    #[test]
    fn matcher_and_query_share_the_terms(list in proptest::collection::vec("\\PC{0,6}", 0..12)) {
        let matcher = SensitiveTerms::new(&list).unwrap();
        let query = sensitive_terms_query(&list).unwrap();
        let sent: HashSet<String> = match &query["bool"]["must_not"][0]["terms"]["tags.name.raw"] {
            serde_json::Value::Array(xs) => xs.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
            _ => HashSet::new(),
        };
        prop_assert_eq!(&matcher.terms, &sent);
    }

    /// A text is sensitive exactly when one of its tokens is in the list.
    #[test]
    fn sensitive_iff_a_token_is_listed(text in "\\PC{0,80}", list in proptest::collection::vec("[a-zA-Z]{1,3}", 0..8)) {
        let matcher = SensitiveTerms::new(&list).unwrap();
        let expected = tokens(&text).iter().any(|t| matcher.terms.contains(t));
        prop_assert_eq!(matcher.matches_text(&text), expected);
    }
}
