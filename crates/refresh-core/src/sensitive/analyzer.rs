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

use icu_properties::props::{EmojiModifier, LineBreak, RegionalIndicator, Script, WordBreak};
use icu_properties::{CodePointMapData, CodePointSetData};
use std::ops::Range;
use unicode_segmentation::UnicodeSegmentation;

/// Lucene's `StandardAnalyzer.DEFAULT_MAX_TOKEN_LENGTH`, in UTF-16 code units.
pub const MAX_TOKEN_LENGTH: usize = 255;

/// U+20E3 COMBINING ENCLOSING KEYCAP.
const KEYCAP: char = '\u{20E3}';
/// U+FE0E VARIATION SELECTOR-15 (text presentation).
const TEXT_PRESENTATION: char = '\u{FE0E}';
/// U+200D ZERO WIDTH JOINER.
const ZWJ: char = '\u{200D}';

/// `Extended_Pictographic` of emoji-data.txt 11.0, the emoji data Lucene 8.6's grammar was
/// generated from. Unicode 13+ took many symbols out of the property (☿ U+263F, ☞ U+261E,
/// 🂹 U+1F0B9, …): Lucene still makes each of them an emoji token.
const EXTENDED_PICTOGRAPHIC_11: &[(u32, u32)] = &[
    (0xA9, 0xA9),
    (0xAE, 0xAE),
    (0x203C, 0x203C),
    (0x2049, 0x2049),
    (0x2122, 0x2122),
    (0x2139, 0x2139),
    (0x2194, 0x2199),
    (0x21A9, 0x21AA),
    (0x231A, 0x231B),
    (0x2328, 0x2328),
    (0x2388, 0x2388),
    (0x23CF, 0x23CF),
    (0x23E9, 0x23F3),
    (0x23F8, 0x23FA),
    (0x24C2, 0x24C2),
    (0x25AA, 0x25AB),
    (0x25B6, 0x25B6),
    (0x25C0, 0x25C0),
    (0x25FB, 0x25FE),
    (0x2600, 0x2605),
    (0x2607, 0x2612),
    (0x2614, 0x2685),
    (0x2690, 0x2705),
    (0x2708, 0x2712),
    (0x2714, 0x2714),
    (0x2716, 0x2716),
    (0x271D, 0x271D),
    (0x2721, 0x2721),
    (0x2728, 0x2728),
    (0x2733, 0x2734),
    (0x2744, 0x2744),
    (0x2747, 0x2747),
    (0x274C, 0x274C),
    (0x274E, 0x274E),
    (0x2753, 0x2755),
    (0x2757, 0x2757),
    (0x2763, 0x2767),
    (0x2795, 0x2797),
    (0x27A1, 0x27A1),
    (0x27B0, 0x27B0),
    (0x27BF, 0x27BF),
    (0x2934, 0x2935),
    (0x2B05, 0x2B07),
    (0x2B1B, 0x2B1C),
    (0x2B50, 0x2B50),
    (0x2B55, 0x2B55),
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3297),
    (0x3299, 0x3299),
    (0x1F000, 0x1F0FF),
    (0x1F10D, 0x1F10F),
    (0x1F12F, 0x1F12F),
    (0x1F16C, 0x1F171),
    (0x1F17E, 0x1F17F),
    (0x1F18E, 0x1F18E),
    (0x1F191, 0x1F19A),
    (0x1F1AD, 0x1F1E5),
    (0x1F201, 0x1F20F),
    (0x1F21A, 0x1F21A),
    (0x1F22F, 0x1F22F),
    (0x1F232, 0x1F23A),
    (0x1F23C, 0x1F23F),
    (0x1F249, 0x1F3FA),
    (0x1F400, 0x1F53D),
    (0x1F546, 0x1F64F),
    (0x1F680, 0x1F6FF),
    (0x1F774, 0x1F77F),
    (0x1F7D5, 0x1F7FF),
    (0x1F80C, 0x1F80F),
    (0x1F848, 0x1F84F),
    (0x1F85A, 0x1F85F),
    (0x1F888, 0x1F88F),
    (0x1F8AE, 0x1F8FF),
    (0x1F90C, 0x1F93A),
    (0x1F93C, 0x1F945),
    (0x1F947, 0x1FFFD),
];

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
    // Adjacent Complex_Context pieces are one token, also where a rescan (below) split them.
    let mut run: Option<Range<usize>> = None;
    let stopped = pieces(text, &mut |span, complex| {
        if complex {
            match &mut run {
                Some(r) if r.end == span.start => {
                    r.end = span.end;
                    return false;
                }
                _ => {}
            }
        }
        if let Some(r) = run.take() {
            if f(r) {
                return true;
            }
        }
        if complex {
            run = Some(span);
            false
        } else {
            f(span)
        }
    });
    if let (false, Some(r)) = (stopped, run) {
        f(r);
    }
}

/// The token pieces of `text`, each flagged when it is a Complex_Context segment (to be
/// joined with its neighbours of that kind). Returns true when `f` did.
fn pieces(text: &str, f: &mut dyn FnMut(Range<usize>, bool) -> bool) -> bool {
    for (start, segment) in text.split_word_bound_indices() {
        let Some(first) = segment.chars().next() else {
            continue;
        };
        let stopped = if is_complex_context(first) {
            f(start..start + segment.len(), true)
        } else {
            segment_spans(segment, &mut |span, complex| {
                f(span.start + start..span.end + start, complex)
            })
        };
        if stopped {
            return true;
        }
    }
    false
}

/// The tokens within one UAX#29 segment (none, the segment, or parts of it). Returns true
/// when `f` did.
fn segment_spans(segment: &str, f: &mut dyn FnMut(Range<usize>, bool) -> bool) -> bool {
    let Some(first) = segment.chars().next() else {
        return false;
    };
    // Lucene's emoji rule takes leading joiners: " \u{200D}😀" has the token "\u{200D}😀".
    let emoji_from = segment.find(|c: char| c != ZWJ).unwrap_or(segment.len());
    if segment[emoji_from..]
        .chars()
        .next()
        .is_some_and(is_emoji_start)
    {
        // A text-presentation selector ends the emoji; what follows it is scanned anew.
        return match segment.find(TEXT_PRESENTATION) {
            Some(cut) => f(0..cut, false) || rescan(segment, cut + TEXT_PRESENTATION.len_utf8(), f),
            None => f(0..segment.len(), false),
        };
    }
    let kept = match word_break(first) {
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
        // Lucene's catch-all rule drops one character; the marks or joiners UAX#29 attached to
        // it (WB4) are scanned anew: "\t" + U+1056 (a Myanmar mark) has the token U+1056.
        // Runs of spaces or underscores hold nothing else and are not rescanned.
        let rest = first.len_utf8();
        let attached = segment[rest..].chars().any(|c| {
            matches!(
                word_break(c),
                WordBreak::Extend | WordBreak::Format | WordBreak::ZWJ
            )
        });
        return attached && rescan(segment, rest, f);
    }
    // A skin-tone modifier inside a word was a character of its own in Unicode 9.
    match segment
        .char_indices()
        .skip(1)
        .find(|&(_, c)| CodePointSetData::new::<EmojiModifier>().contains(c))
    {
        Some((cut, _)) => f(0..cut, false) || rescan(segment, cut, f),
        None => f(0..segment.len(), false),
    }
}

/// Tokens of `segment[from..]` scanned as new text, reported in `segment`'s offsets.
fn rescan(segment: &str, from: usize, f: &mut dyn FnMut(Range<usize>, bool) -> bool) -> bool {
    pieces(&segment[from..], &mut |span, complex| {
        f(span.start + from..span.end + from, complex)
    })
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

/// Starts an emoji token in Lucene's grammar: `Extended_Pictographic` (of emoji 11.0: it
/// holds every other `Emoji` but the keycap bases `0-9#*`, handled as numbers and keycaps,
/// and the regional indicators, handled in pairs), or an emoji modifier on its own.
fn is_emoji_start(c: char) -> bool {
    let c32 = u32::from(c);
    EXTENDED_PICTOGRAPHIC_11
        .binary_search_by(|&(lo, hi)| {
            if hi < c32 {
                std::cmp::Ordering::Less
            } else if lo > c32 {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
        || CodePointSetData::new::<EmojiModifier>().contains(c)
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
