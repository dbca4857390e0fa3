//! Reading a bulk response: the fate of each item (indexed, worth retrying, refused for
//! good), and from those, what the retry logic does next with the batch.
//!
//! The response is read with `filter_path=errors,items.*.status,items.*.error` (see
//! `sender`), so only statuses and errors are deserialised, never the documents.

use serde::Deserialize;

/// What to do with one bulk item, from its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemFate {
    Indexed,
    /// Overload or a shard problem that may pass: 429 and 5xx.
    Retry,
    /// The document itself was refused (mapping error and other 4xx): retrying cannot help.
    Failed,
}

pub fn item_fate(status: u16) -> ItemFate {
    match status {
        200..=299 => ItemFate::Indexed,
        429 | 500..=599 => ItemFate::Retry,
        _ => ItemFate::Failed,
    }
}

/// A whole bulk request that may succeed when retried: connection errors, timeouts, 429, 5xx.
pub fn request_status_is_retryable(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

#[derive(Debug, Deserialize)]
struct RawResponse {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, RawItem>>,
}

#[derive(Debug, Deserialize)]
struct RawItem {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// The fate of each item of a bulk response, in request order, with an error text for
/// those that were not indexed.
#[derive(Debug, PartialEq)]
pub struct ItemResult {
    pub fate: ItemFate,
    pub status: u16,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ResponseError {
    #[error("unreadable bulk response: {0}")]
    Unreadable(String),
    #[error("bulk response has {got} items for {sent} documents")]
    ItemCount { got: usize, sent: usize },
}

/// Parses a bulk response body (full or reduced by `filter_path`) for a batch of `sent` items.
pub fn parse_bulk_response(body: &[u8], sent: usize) -> Result<Vec<ItemResult>, ResponseError> {
    let response: RawResponse =
        serde_json::from_slice(body).map_err(|e| ResponseError::Unreadable(e.to_string()))?;
    if !response.errors && response.items.is_empty() {
        // `filter_path` may drop the items of an all-success response.
        return Ok((0..sent)
            .map(|_| ItemResult {
                fate: ItemFate::Indexed,
                status: 200,
                error: None,
            })
            .collect());
    }
    if response.items.len() != sent {
        return Err(ResponseError::ItemCount {
            got: response.items.len(),
            sent,
        });
    }
    Ok(response
        .items
        .into_iter()
        .map(|item| {
            let Some(result) = item.into_values().next() else {
                return ItemResult {
                    fate: ItemFate::Failed,
                    status: 0,
                    error: Some("empty bulk item".into()),
                };
            };
            let fate = item_fate(result.status);
            let error = match fate {
                ItemFate::Indexed => None,
                _ => Some(describe_item_error(result.status, result.error.as_ref())),
            };
            ItemResult {
                fate,
                status: result.status,
                error,
            }
        })
        .collect())
}

fn describe_item_error(status: u16, error: Option<&serde_json::Value>) -> String {
    let kind = error
        .and_then(|e| e.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("error");
    let reason = error
        .and_then(|e| e.get("reason"))
        .and_then(|r| r.as_str())
        .unwrap_or("");
    let caused_by = error
        .and_then(|e| e.get("caused_by"))
        .and_then(|c| c.get("reason"))
        .and_then(|r| r.as_str())
        .map(|r| format!(" (caused by: {r})"))
        .unwrap_or_default();
    truncate(format!("{status} {kind}: {reason}{caused_by}"), 400)
}

/// `s` cut to at most `max` bytes (on a character boundary), with `…` when cut.
pub fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// What one bulk response means for the batch that was sent.
#[derive(Debug, Default, PartialEq)]
pub struct Triage {
    /// Documents Elasticsearch indexed.
    pub indexed: u64,
    /// Positions in the batch to send again: items answered 429 / 5xx while attempts remain.
    pub retry: Vec<usize>,
    /// Positions that failed for good, with their error text.
    pub failed: Vec<(usize, String)>,
    /// The error of the last item to retry, for the retry log line.
    pub retry_reason: Option<String>,
}

/// Sorts a response's items into indexed, to retry and failed. Items that could pass on a
/// retry (429, 5xx) are retried only while `may_retry` (attempts remain); otherwise, like
/// every refused document, they count as failed.
pub fn triage(results: Vec<ItemResult>, may_retry: bool) -> Triage {
    let mut triage = Triage::default();
    for (position, result) in results.into_iter().enumerate() {
        match result.fate {
            ItemFate::Indexed => triage.indexed += 1,
            ItemFate::Retry if may_retry => {
                triage.retry.push(position);
                triage.retry_reason = result.error;
            }
            _ => triage
                .failed
                .push((position, result.error.unwrap_or_default())),
        }
    }
    triage
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_fates() {
        assert_eq!(item_fate(201), ItemFate::Indexed);
        assert_eq!(item_fate(200), ItemFate::Indexed);
        assert_eq!(item_fate(429), ItemFate::Retry);
        assert_eq!(item_fate(503), ItemFate::Retry);
        assert_eq!(item_fate(400), ItemFate::Failed);
        assert_eq!(item_fate(404), ItemFate::Failed);
        assert!(request_status_is_retryable(502));
        assert!(!request_status_is_retryable(400));
    }

    #[test]
    fn parses_mixed_response() {
        let body = br#"{"errors":true,"items":[
            {"index":{"status":201}},
            {"index":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse","caused_by":{"reason":"bad number"}}}},
            {"index":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}}]}"#;
        let results = parse_bulk_response(body, 3).unwrap();
        assert_eq!(
            results.iter().map(|r| r.fate).collect::<Vec<_>>(),
            vec![ItemFate::Indexed, ItemFate::Failed, ItemFate::Retry]
        );
        assert_eq!(
            results[1].error.as_deref(),
            Some("400 mapper_parsing_exception: failed to parse (caused by: bad number)")
        );
        assert_eq!(results[0].error, None);
    }

    #[test]
    fn all_success_without_items_and_count_mismatch() {
        assert_eq!(
            parse_bulk_response(br#"{"errors":false}"#, 2)
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse_bulk_response(br#"{"errors":true,"items":[{"index":{"status":201}}]}"#, 2),
            Err(ResponseError::ItemCount { got: 1, sent: 2 })
        );
        assert!(matches!(
            parse_bulk_response(b"<html>", 1),
            Err(ResponseError::Unreadable(_))
        ));
    }

    #[test]
    fn triage_retries_only_what_may_pass_while_attempts_remain() {
        let result = |fate, error: Option<&str>| ItemResult {
            fate,
            status: 0,
            error: error.map(String::from),
        };
        let results = || {
            vec![
                result(ItemFate::Indexed, None),
                result(ItemFate::Retry, Some("429 a")),
                result(ItemFate::Failed, Some("400 b")),
                result(ItemFate::Retry, Some("503 c")),
                result(ItemFate::Failed, None),
            ]
        };
        assert_eq!(
            triage(results(), true),
            Triage {
                indexed: 1,
                retry: vec![1, 3],
                failed: vec![(2, "400 b".into()), (4, String::new())],
                retry_reason: Some("503 c".into()),
            }
        );
        assert_eq!(
            triage(results(), false),
            Triage {
                indexed: 1,
                retry: vec![],
                failed: vec![
                    (1, "429 a".into()),
                    (2, "400 b".into()),
                    (3, "503 c".into()),
                    (4, String::new())
                ],
                retry_reason: None,
            }
        );
    }

    #[test]
    fn truncate_cuts_on_a_character_boundary() {
        assert_eq!(truncate("abc".into(), 3), "abc");
        assert_eq!(truncate("abcd".into(), 3), "abc…");
        assert_eq!(truncate("aé".into(), 2), "a…");
    }
}
