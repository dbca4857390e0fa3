//! Elasticsearch bulk indexing: size-cut batches of pre-serialised NDJSON, sent with
//! retries and back-off, with every item's fate counted.
//!
//! Plain `reqwest` with a pre-built body: the hot path only copies bytes, and a retry of
//! failed items re-sends slices of the same body instead of re-serialising documents.

use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::tasks::Task;

#[derive(Debug, Clone)]
pub struct BulkConfig {
    pub max_docs: usize,
    pub max_bytes: usize,
    pub in_flight: usize,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub request_timeout: Duration,
}

impl Default for BulkConfig {
    fn default() -> Self {
        BulkConfig {
            max_docs: 2_000,
            max_bytes: 8 * 1024 * 1024,
            in_flight: 4,
            max_attempts: 8,
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
        }
    }
}

/// One document's action + source lines inside a batch body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchItem {
    pub id: i64,
    pub start: usize,
    pub end: usize,
}

/// A bulk request body and where each document's pair lies in it.
#[derive(Debug, Clone)]
pub struct Batch {
    pub body: Bytes,
    pub items: Vec<BatchItem>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// A new batch holding only the items at `positions` (for retrying failed items).
    pub fn subset(&self, positions: &[usize]) -> Batch {
        let bytes: usize = positions
            .iter()
            .map(|&p| self.items[p].end - self.items[p].start)
            .sum();
        let mut body = Vec::with_capacity(bytes);
        let mut items = Vec::with_capacity(positions.len());
        for &p in positions {
            let item = self.items[p];
            let start = body.len();
            body.extend_from_slice(&self.body[item.start..item.end]);
            items.push(BatchItem {
                id: item.id,
                start,
                end: body.len(),
            });
        }
        Batch {
            body: Bytes::from(body),
            items,
        }
    }
}

/// Accumulates NDJSON pairs and cuts a batch at `max_docs` documents or before the pair
/// that would take it past `max_bytes` (a single larger document goes alone).
#[derive(Debug)]
pub struct BatchBuilder {
    max_docs: usize,
    max_bytes: usize,
    buf: Vec<u8>,
    items: Vec<BatchItem>,
}

impl BatchBuilder {
    pub fn new(max_docs: usize, max_bytes: usize) -> Self {
        BatchBuilder {
            max_docs: max_docs.max(1),
            max_bytes: max_bytes.max(1),
            buf: Vec::new(),
            items: Vec::new(),
        }
    }

    /// Appends one document with `write_pair`, which must append exactly its two NDJSON
    /// lines (and leave the buffer unchanged on error). Returns a batch when one is full.
    pub fn push<E>(
        &mut self,
        id: i64,
        write_pair: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<Option<Batch>, E> {
        let start = self.buf.len();
        write_pair(&mut self.buf)?;
        let end = self.buf.len();
        let mut full = None;
        if !self.items.is_empty() && end > self.max_bytes {
            // This pair would overflow the batch: ship what came before, keep it for the next.
            let tail = self.buf.split_off(start);
            full = Some(self.take());
            self.buf = tail;
            self.items.push(BatchItem {
                id,
                start: 0,
                end: self.buf.len(),
            });
        } else {
            self.items.push(BatchItem { id, start, end });
        }
        if full.is_none() && (self.items.len() >= self.max_docs || self.buf.len() >= self.max_bytes)
        {
            full = Some(self.take());
        }
        Ok(full)
    }

    /// The documents gathered so far, if any.
    pub fn finish(&mut self) -> Option<Batch> {
        (!self.items.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> Batch {
        let body = Bytes::from(std::mem::take(&mut self.buf));
        self.buf.reserve(body.len().min(self.max_bytes));
        Batch {
            body,
            items: std::mem::take(&mut self.items),
        }
    }
}

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

/// Exponential back-off: `base × 2^(attempt-1)` capped at `max`, scaled by `jitter`
/// (expected in 0.5..=1.0, so concurrent senders do not retry in lockstep).
pub fn backoff_delay(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << exp).min(max);
    raw.mul_f64(jitter.clamp(0.0, 1.0))
}

fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded per instance: enough randomness to spread retries.
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    0.5 + (bits % 1000) as f64 / 2000.0
}

#[derive(Debug, Deserialize)]
struct BulkResponse {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, BulkItemResult>>,
}

#[derive(Debug, Deserialize)]
struct BulkItemResult {
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
    let response: BulkResponse =
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

fn truncate(mut s: String, max: usize) -> String {
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

#[derive(Debug, thiserror::Error)]
pub enum EsUrlError {
    #[error("ES_URL is not a valid http(s) URL")]
    Invalid,
}

/// The bulk endpoint of one index, with credentials taken out of the URL so that no
/// error or log line (which may print the URL) can show them.
#[derive(Clone)]
pub struct EsClient {
    http: reqwest::Client,
    base: Url,
    user: Option<(String, Option<String>)>,
}

impl std::fmt::Debug for EsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EsClient({})", self.base)
    }
}

/// A bulk request that did not come back with a usable response.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Retryable(String),
    #[error("{0}")]
    Fatal(String),
}

impl EsClient {
    pub fn new(es_url: &str, request_timeout: Duration) -> Result<EsClient, EsUrlError> {
        let mut base = Url::parse(es_url).map_err(|_| EsUrlError::Invalid)?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(EsUrlError::Invalid);
        }
        let user = (!base.username().is_empty()).then(|| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(base.username()), base.password().map(decode))
        });
        base.set_username("").map_err(|_| EsUrlError::Invalid)?;
        base.set_password(None).map_err(|_| EsUrlError::Invalid)?;
        let http = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|_| EsUrlError::Invalid)?;
        Ok(EsClient { http, base, user })
    }

    /// `scheme://host:port` for logs and messages.
    pub fn display_host(&self) -> String {
        format!(
            "{}://{}",
            self.base.scheme(),
            self.base.host_str().unwrap_or("?")
        ) + &self
            .base
            .port()
            .map(|p| format!(":{p}"))
            .unwrap_or_default()
    }

    /// A request to `base/<segments…>?<query>`; segments are percent-encoded.
    fn request(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        query: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, RequestError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| RequestError::Fatal("ES_URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        url.set_query(query);
        let builder = self.http.request(method, url);
        Ok(match &self.user {
            Some((user, password)) => builder.basic_auth(user, password.as_ref()),
            None => builder,
        })
    }

    /// Whether `index` exists (an alias counts). Bulk would otherwise create it with
    /// dynamic mappings.
    pub async fn index_exists(&self, index: &str) -> Result<bool, RequestError> {
        let response = self
            .request(reqwest::Method::HEAD, &[index], None)?
            .send()
            .await
            .map_err(|e| {
                RequestError::Retryable(format!(
                    "Elasticsearch at {} unreachable: {}",
                    self.display_host(),
                    e.without_url()
                ))
            })?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            s => Err(RequestError::Retryable(format!(
                "Elasticsearch answered {s} for index {index}"
            ))),
        }
    }

    /// One bulk request; parses the per-item results.
    pub async fn bulk(&self, index: &str, batch: &Batch) -> Result<Vec<ItemResult>, RequestError> {
        let response = self
            .request(
                reqwest::Method::POST,
                &[index, "_bulk"],
                Some("filter_path=errors,items.*.status,items.*.error"),
            )?
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(batch.body.clone())
            .send()
            .await
            .map_err(|e| {
                RequestError::Retryable(format!(
                    "bulk request to {} failed: {}",
                    self.display_host(),
                    e.without_url()
                ))
            })?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| {
            RequestError::Retryable(format!(
                "bulk response from {} cut off: {}",
                self.display_host(),
                e.without_url()
            ))
        })?;
        if !(200..300).contains(&status) {
            let text = truncate(String::from_utf8_lossy(&body).into_owned(), 300);
            let message = format!("bulk request answered {status}: {text}");
            return Err(if request_status_is_retryable(status) {
                RequestError::Retryable(message)
            } else {
                RequestError::Fatal(message)
            });
        }
        parse_bulk_response(&body, batch.len()).map_err(|e| RequestError::Retryable(e.to_string()))
    }
}

/// Why a batch could not be delivered at all: the task must stop.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BatchAborted(pub String);

/// Indexes one batch: retries the whole request on transient failures and re-sends items
/// that came back 429/5xx, with back-off, up to `max_attempts`. Every document ends up
/// counted as indexed or failed. `Err` means the request itself could not be delivered
/// (attempts exhausted, a fatal answer or cancellation): the caller stops the task.
pub async fn index_batch(
    es: &EsClient,
    index: &str,
    config: &BulkConfig,
    task: &Task,
    batch: Batch,
    cancel: &CancellationToken,
) -> Result<(), BatchAborted> {
    let mut pending = batch;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let last_error = match es.bulk(index, &pending).await {
            Ok(results) => {
                let mut retry = Vec::new();
                let mut indexed = 0;
                let mut last = None;
                for (position, result) in results.into_iter().enumerate() {
                    match result.fate {
                        ItemFate::Indexed => indexed += 1,
                        ItemFate::Retry if attempt < config.max_attempts => {
                            retry.push(position);
                            last = result.error;
                        }
                        _ => {
                            task.counters.add_failed(1);
                            let id = pending.items[position].id;
                            let error = result.error.unwrap_or_default();
                            tracing::warn!(task_id = %task.id, id, %error, "document not indexed");
                            task.record_error(format!("id {id}: {error}"));
                        }
                    }
                }
                task.counters.add_indexed(indexed);
                if retry.is_empty() {
                    return Ok(());
                }
                pending = pending.subset(&retry);
                last.unwrap_or_default()
            }
            Err(RequestError::Retryable(message)) if attempt < config.max_attempts => message,
            Err(error) => {
                let message = format!("{error} (after {attempt} attempt(s))");
                task.counters.add_failed(pending.len() as u64);
                task.record_error(message.clone());
                return Err(BatchAborted(message));
            }
        };
        let delay = backoff_delay(attempt, config.retry_base, config.retry_max, jitter());
        tracing::warn!(task_id = %task.id, attempt, docs = pending.len(), delay_ms = delay.as_millis() as u64,
            error = %last_error, "bulk retry");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = cancel.cancelled() => {
                let message = format!("stopped while retrying {} document(s): {last_error}", pending.len());
                task.counters.add_failed(pending.len() as u64);
                task.record_error(message.clone());
                return Err(BatchAborted(message));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pair(id: i64, pad: usize) -> impl FnOnce(&mut Vec<u8>) -> Result<(), ()> {
        move |out: &mut Vec<u8>| {
            out.extend_from_slice(
                format!(
                    "{{\"index\":{{\"_id\":\"{id}\"}}}}\n{{\"p\":\"{}\"}}\n",
                    "x".repeat(pad)
                )
                .as_bytes(),
            );
            Ok(())
        }
    }

    #[test]
    fn cuts_at_doc_count() {
        let mut b = BatchBuilder::new(3, 1 << 20);
        assert!(b.push(1, pair(1, 1)).unwrap().is_none());
        assert!(b.push(2, pair(2, 1)).unwrap().is_none());
        let batch = b
            .push(3, pair(3, 1))
            .unwrap()
            .expect("third doc fills the batch");
        assert_eq!(
            batch.items.iter().map(|i| i.id).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(b.finish().is_none());
    }

    #[test]
    fn cuts_before_the_pair_that_overflows_bytes() {
        let mut b = BatchBuilder::new(100, 200);
        assert!(b.push(1, pair(1, 60)).unwrap().is_none());
        assert!(b.push(2, pair(2, 60)).unwrap().is_none());
        let batch = b
            .push(3, pair(3, 60))
            .unwrap()
            .expect("third pair overflows");
        assert_eq!(batch.len(), 2);
        assert!(batch.body.len() <= 200);
        let rest = b.finish().expect("third doc kept");
        assert_eq!(
            rest.items,
            vec![BatchItem {
                id: 3,
                start: 0,
                end: rest.body.len()
            }]
        );
        assert!(rest.body.starts_with(b"{\"index\":{\"_id\":\"3\"}}\n"));
    }

    #[test]
    fn a_single_huge_document_goes_alone() {
        let mut b = BatchBuilder::new(100, 50);
        let batch = b.push(1, pair(1, 500)).unwrap().expect("alone");
        assert_eq!(batch.len(), 1);
        assert!(b.finish().is_none());
    }

    #[test]
    fn writer_error_leaves_builder_unchanged() {
        let mut b = BatchBuilder::new(10, 1000);
        b.push(1, pair(1, 1)).unwrap();
        assert!(matches!(
            b.push(2, |_: &mut Vec<u8>| Err("bad")),
            Err("bad")
        ));
        assert_eq!(b.finish().map(|x| x.len()), Some(1));
    }

    proptest! {
        /// Whatever the limits and sizes, batches hold every pair once, in order, byte for
        /// byte, and never exceed a limit unless one document alone does.
        #[test]
        fn batches_partition_the_stream(sizes in proptest::collection::vec(0usize..300, 0..200),
                                        max_docs in 1usize..50, max_bytes in 1usize..2000) {
            let mut b = BatchBuilder::new(max_docs, max_bytes);
            let mut expected = Vec::new();
            let mut batches = Vec::new();
            for (i, &size) in sizes.iter().enumerate() {
                let mut one = Vec::new();
                pair(i as i64, size)(&mut one).unwrap();
                expected.extend_from_slice(&one);
                if let Some(batch) = b.push(i as i64, pair(i as i64, size)).unwrap() { batches.push(batch); }
            }
            if let Some(batch) = b.finish() { batches.push(batch); }
            let mut joined = Vec::new();
            let mut ids = Vec::new();
            for batch in &batches {
                prop_assert!(batch.len() <= max_docs);
                prop_assert!(batch.body.len() <= max_bytes || batch.len() == 1);
                for item in &batch.items {
                    joined.extend_from_slice(&batch.body[item.start..item.end]);
                    ids.push(item.id);
                }
                prop_assert_eq!(batch.items.last().map(|i| i.end), Some(batch.body.len()));
            }
            prop_assert_eq!(joined, expected);
            prop_assert_eq!(ids, (0..sizes.len() as i64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn subset_keeps_selected_pairs() {
        let mut b = BatchBuilder::new(10, 1 << 20);
        for id in 1..=4 {
            b.push(id, pair(id, 3)).unwrap();
        }
        let batch = b.finish().unwrap();
        let sub = batch.subset(&[1, 3]);
        assert_eq!(
            sub.items.iter().map(|i| i.id).collect::<Vec<_>>(),
            vec![2, 4]
        );
        let text = std::str::from_utf8(&sub.body).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(text.starts_with("{\"index\":{\"_id\":\"2\"}}\n"));
        assert!(text.contains("{\"index\":{\"_id\":\"4\"}}\n"));
    }

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
    fn backoff_doubles_and_caps() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        assert_eq!(backoff_delay(1, base, max, 1.0), Duration::from_millis(100));
        assert_eq!(backoff_delay(2, base, max, 1.0), Duration::from_millis(200));
        assert_eq!(backoff_delay(4, base, max, 1.0), Duration::from_millis(800));
        assert_eq!(backoff_delay(5, base, max, 1.0), max);
        assert_eq!(
            backoff_delay(60, base, max, 0.5),
            Duration::from_millis(500)
        );
        let j = jitter();
        assert!((0.5..=1.0).contains(&j));
    }

    #[test]
    fn credentials_are_taken_out_of_the_url() {
        let es = EsClient::new(
            "http://elastic:s%40cret@127.0.0.1:9200",
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(es.display_host(), "http://127.0.0.1:9200");
        assert!(!format!("{es:?}").contains("cret"));
        assert_eq!(
            es.user,
            Some(("elastic".to_string(), Some("s@cret".to_string())))
        );
        assert!(EsClient::new("not a url", Duration::from_secs(1)).is_err());
        assert!(EsClient::new("ftp://x", Duration::from_secs(1)).is_err());
    }
}
