//! The tokens Elasticsearch 7.9.2 (Lucene 8.6) puts in a `.raw` field: the `standard`
//! analyzer, i.e. `StandardTokenizer` (max_token_length 255) and `LowerCaseFilter`, no stop
//! words.
//!
//! Segmentation is UAX#29 word boundaries from `unicode-segmentation`. Lucene's tokenizer is a
//! JFlex grammar over those rules with a few differences this module applies on top:
//!
//! - only some segments are tokens: letters/numbers (`WB=ALetter | Hebrew_Letter | Numeric |
//!   Katakana`, or `ExtendNumLet` joined to one of those), a single Han or Hiragana character,
//!   emoji sequences; punctuation, symbols, spaces and lone marks are dropped;
//! - runs of `Line_Break=Complex_Context` characters (Thai, Lao, Khmer, Myanmar, …) are one
//!   token (UAX#29 splits them per character);
//! - an emoji modifier (skin tone) was not `Extend` in Unicode 9: after a letter it starts a
//!   token of its own; U+FE0E (text presentation) ends an emoji token and is dropped;
//! - a token longer than 255 UTF-16 units is cut: the scanner's buffer holds 255 units from
//!   the token's start, it takes the longest token that fits and scans on from there;
//! - lower-casing is Java's `Character.toLowerCase` per code point (simple mapping: `İ` → `i`).
//!
//! Known disagreements (Unicode 9 in Lucene 8.6, Unicode 17 here) are listed in
//! docs/ARCHITECTURE.md ("Sensitive terms"); the verification gate catches them.

use icu_properties::props::{
    Emoji, EmojiModifier, ExtendedPictographic, LineBreak, RegionalIndicator, Script, WordBreak,
};
use icu_properties::{CodePointMapData, CodePointSetData};
use std::ops::Range;
use unicode_segmentation::UnicodeSegmentation;

/// Lucene's `StandardAnalyzer.DEFAULT_MAX_TOKEN_LENGTH`, in UTF-16 code units.
pub const MAX_TOKEN_LENGTH: usize = 255;

/// U+20E3 COMBINING ENCLOSING KEYCAP.
const KEYCAP: char = '\u{20E3}';
/// U+FE0E VARIATION SELECTOR-15 (text presentation).
const TEXT_PRESENTATION: char = '\u{FE0E}';

/// The tokens of `text`, lower-cased, in order (repeats kept), as `_analyze` with the
/// `standard` analyzer returns them.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_token(text, &mut String::new(), &mut |token| {
        out.push(token.to_string());
        false
    });
    out
}

/// Calls `f` with each lower-cased token of `text` (written into `buf`); stops early and
/// returns true as soon as `f` does.
pub(crate) fn for_each_token(
    text: &str,
    buf: &mut String,
    f: &mut dyn FnMut(&str) -> bool,
) -> bool {
    let mut found = false;
    token_spans(text, &mut |span| {
        buf.clear();
        lowercase_into(&text[span], buf);
        found = f(buf);
        found
    });
    found
}

/// Java's `Character.toLowerCase(int)`: the simple (one code point) mapping. Rust's
/// `char::to_lowercase` is the full mapping, which differs only where it yields more than
/// one character (`İ` → `i̇`); the simple mapping is then its first character.
pub fn lowercase_into(text: &str, out: &mut String) {
    for c in text.chars() {
        out.push(c.to_lowercase().next().unwrap_or(c));
    }
}

/// [`lowercase_into`] into a new string.
pub fn lowercase(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    lowercase_into(text, &mut out);
    out
}

/// The byte ranges of the tokens of `text`, in order, each at most [`MAX_TOKEN_LENGTH`]
/// UTF-16 units. `f` returns true to stop.
fn token_spans(text: &str, f: &mut dyn FnMut(Range<usize>) -> bool) {
    let mut base = 0;
    'scan: while base < text.len() {
        let rest = &text[base..];
        let mut long = None;
        unbounded_spans(rest, &mut |span| {
            if utf16_len(&rest[span.clone()]) <= MAX_TOKEN_LENGTH {
                f(span.start + base..span.end + base)
            } else {
                long = Some(span.start);
                true
            }
        });
        let Some(start) = long else { break 'scan };
        // The scanner sees only MAX_TOKEN_LENGTH units from the token's start: the token is
        // the first one of that window as if the text ended there; scanning restarts after it.
        let from = &rest[start..];
        let window = &from[..utf16_prefix(from, MAX_TOKEN_LENGTH)];
        let mut first = None;
        unbounded_spans(window, &mut |span| {
            first = Some(span);
            true
        });
        base += start
            + match first {
                Some(span) if span.start == 0 => {
                    if f(base + start..base + start + span.end) {
                        return;
                    }
                    span.end
                }
                // No token fits from here: Lucene's catch-all rule skips one character.
                _ => from.chars().next().map_or(from.len(), char::len_utf8),
            };
    }
}

/// Token spans with no length limit. `f` returns true to stop.
fn unbounded_spans(text: &str, f: &mut dyn FnMut(Range<usize>) -> bool) {
    // A run of Complex_Context segments being joined into one token.
    let mut run: Option<Range<usize>> = None;
    for (start, segment) in text.split_word_bound_indices() {
        let end = start + segment.len();
        let Some(first) = segment.chars().next() else {
            continue;
        };
        if is_complex_context(first) {
            run = Some(match run {
                Some(r) if r.end == start => r.start..end,
                Some(r) => {
                    if f(r) {
                        return;
                    }
                    start..end
                }
                None => start..end,
            });
            continue;
        }
        if let Some(r) = run.take() {
            if f(r) {
                return;
            }
        }
        if segment_spans(segment, &mut |span| f(span.start + start..span.end + start)) {
            return;
        }
    }
    if let Some(r) = run {
        f(r);
    }
}

/// The tokens within one UAX#29 segment (none, the segment, or parts of it). Returns true
/// when `f` did.
fn segment_spans(segment: &str, f: &mut dyn FnMut(Range<usize>) -> bool) -> bool {
    let mut chars = segment.char_indices();
    let Some((_, first)) = chars.next() else {
        return false;
    };
    let word_break = word_break(first);
    if is_emoji_start(first) {
        // A text-presentation selector ends the emoji; what follows it is scanned anew.
        return match segment.find(TEXT_PRESENTATION) {
            Some(cut) => f(0..cut) || rescan(segment, cut + TEXT_PRESENTATION.len_utf8(), f),
            None => f(0..segment.len()),
        };
    }
    let kept = match word_break {
        WordBreak::ALetter | WordBreak::HebrewLetter | WordBreak::Numeric | WordBreak::Katakana => {
            true
        }
        // `_` alone is dropped; joined to a letter or digit it is part of the word.
        WordBreak::ExtendNumLet => segment.chars().any(is_word_char),
        WordBreak::RegionalIndicator => {
            segment
                .chars()
                .filter(|&c| CodePointSetData::new::<RegionalIndicator>().contains(c))
                .count()
                >= 2
        }
        _ => {
            let script = CodePointMapData::<Script>::new().get(first);
            script == Script::Han
                || script == Script::Hiragana
                // `#️⃣`, `*️⃣`: a keycap sequence is an emoji token.
                || (matches!(first, '#' | '*') && segment.contains(KEYCAP))
        }
    };
    if !kept {
        return false;
    }
    // A skin-tone modifier inside a word was a character of its own in Unicode 9.
    match segment
        .char_indices()
        .skip(1)
        .find(|&(_, c)| CodePointSetData::new::<EmojiModifier>().contains(c))
    {
        Some((cut, _)) => f(0..cut) || rescan(segment, cut, f),
        None => f(0..segment.len()),
    }
}

/// Tokens of `segment[from..]` scanned as new text, reported in `segment`'s offsets.
fn rescan(segment: &str, from: usize, f: &mut dyn FnMut(Range<usize>) -> bool) -> bool {
    let mut stopped = false;
    unbounded_spans(&segment[from..], &mut |span| {
        stopped = f(span.start + from..span.end + from);
        stopped
    });
    stopped
}

fn word_break(c: char) -> WordBreak {
    CodePointMapData::<WordBreak>::new().get(c)
}

fn is_word_char(c: char) -> bool {
    matches!(
        word_break(c),
        WordBreak::ALetter | WordBreak::HebrewLetter | WordBreak::Numeric | WordBreak::Katakana
    )
}

fn is_complex_context(c: char) -> bool {
    CodePointMapData::<LineBreak>::new().get(c) == LineBreak::ComplexContext
}

/// Starts an emoji token in Lucene's grammar: `Extended_Pictographic`, or `Emoji` other than
/// regional indicators and keycap bases (`0-9#*`, handled as numbers / keycaps), or an emoji
/// modifier on its own.
fn is_emoji_start(c: char) -> bool {
    if CodePointSetData::new::<ExtendedPictographic>().contains(c)
        || CodePointSetData::new::<EmojiModifier>().contains(c)
    {
        return true;
    }
    CodePointSetData::new::<Emoji>().contains(c)
        && !c.is_ascii_digit()
        && !matches!(c, '#' | '*')
        && !CodePointSetData::new::<RegionalIndicator>().contains(c)
}

fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Byte length of the longest prefix of `text` of at most `units` UTF-16 units (a character
/// that would straddle the limit is left out, as Lucene's scanner leaves out half a pair).
fn utf16_prefix(text: &str, units: usize) -> usize {
    let mut used = 0;
    for (i, c) in text.char_indices() {
        used += c.len_utf16();
        if used > units {
            return i;
        }
    }
    text.len()
}

#[cfg(test)]
mod tests;
