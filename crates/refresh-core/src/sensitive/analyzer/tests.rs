//! Expected tokens are what Elasticsearch 7.9.2's `_analyze` with the `standard` analyzer
//! returned for the same text (`tests/es_sensitive.rs` checks these and many more live).

use super::*;
use proptest::prelude::*;

fn toks(text: &str) -> Vec<String> {
    tokens(text)
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

#[test]
fn words_numbers_and_their_joiners() {
    assert_eq!(
        toks("Don't stop: 3.14 a.b user@example.com http://x.org/a-b __init__ _ m² ½"),
        strings(&[
            "don't",
            "stop",
            "3.14",
            "a.b",
            "user",
            "example.com",
            "http",
            "x.org",
            "a",
            "b",
            "__init__",
            "m",
        ])
    );
}

#[test]
fn lower_casing_is_javas_simple_mapping() {
    assert_eq!(
        toks("İstanbul ẞ ΟΔΟΣ Σ Ⅻ"),
        strings(&["istanbul", "ß", "οδοσ", "σ", "ⅻ"])
    );
}

#[test]
fn asian_scripts() {
    assert_eq!(
        toks("ภาษาไทย ラーメン らーめん 漢字"),
        strings(&["ภาษาไทย", "ラーメン", "ら", "ー", "め", "ん", "漢", "字"])
    );
}

#[test]
fn emoji() {
    assert_eq!(
        toks("© ™ # 1️⃣ 👍🏽 a🏽 😀😀 🇫🇷🇩"),
        strings(&["©", "™", "1️⃣", "👍🏽", "a", "🏽", "😀", "😀", "🇫🇷"])
    );
    // Text presentation ends the emoji and is dropped.
    assert_eq!(toks("☺\u{FE0E}x"), strings(&["☺", "x"]));
}

#[test]
fn long_tokens_are_cut_at_255_utf16_units() {
    let a = |n: usize| "a".repeat(n);
    assert_eq!(toks(&a(300)), vec![a(255), a(45)]);
    assert_eq!(toks(&a(600)), vec![a(255), a(255), a(90)]);
    // The window ends after "a….": the longest token in it stops before the dot.
    assert_eq!(toks(&(a(254) + ".b")), vec![a(254), "b".into()]);
    assert_eq!(toks(&(a(253) + ".b")), vec![a(253) + ".b"]);
    // A combining mark cut off from its letter is dropped.
    assert_eq!(
        toks(&(a(254) + "e\u{301}bc")),
        vec![a(254) + "e", "bc".into()]
    );
    // A surrogate pair does not straddle the cut.
    assert_eq!(
        toks(&(a(254) + "\u{1D400}bc")),
        vec![a(254), "\u{1D400}bc".into()]
    );
    assert_eq!(
        toks(&(a(253) + "\u{1D400}bc")),
        vec![a(253) + "\u{1D400}", "bc".into()]
    );
    assert_eq!(
        toks(&"ก".repeat(300)),
        vec!["ก".repeat(255), "ก".repeat(45)]
    );
}

#[test]
fn lowercase_keeps_one_char_per_char() {
    assert_eq!(lowercase("İI"), "ii");
    assert_eq!(lowercase("ΣΑΣ"), "σασ");
}

proptest! {
    /// Every token is non-empty, within the length limit, lower-cased (a fixed point) and
    /// a piece of the lower-cased text.
    #[test]
    fn tokens_are_bounded_lowercase_pieces(text in "\\PC{0,400}") {
        let lower = lowercase(&text);
        for token in tokens(&text) {
            prop_assert!(!token.is_empty());
            prop_assert!(utf16_len(&token) <= MAX_TOKEN_LENGTH);
            prop_assert_eq!(lowercase(&token), token.clone());
            prop_assert!(lower.contains(&token), "{token:?} not in {lower:?}");
        }
    }

    /// Words of plain letters separated by spaces are exactly the tokens.
    #[test]
    fn ascii_words_are_their_own_tokens(words in proptest::collection::vec("[a-zA-Z0-9]{1,20}", 0..20)) {
        let text = words.join(" ");
        let expected: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        prop_assert_eq!(tokens(&text), expected);
    }

    /// Punctuation and spaces around a text do not change its tokens.
    #[test]
    fn surrounding_punctuation_is_dropped(text in "\\PC{0,60}", pad in "[ ,;!?()\\[\\]\"]{1,5}") {
        let padded = format!("{pad}{text}{pad}");
        prop_assert_eq!(tokens(&padded), tokens(&format!(" {text} ")));
    }
}
