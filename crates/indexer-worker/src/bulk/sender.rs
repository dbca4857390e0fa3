//! Sending batches: one bulk request through `refresh_core`'s [`SearchClient`] (which owns
//! the credentials), and the retry logic around it — the whole request again on transient
//! failures, only the failed items again when the response says some may pass, with
//! back-off, up to `max_attempts`.
//!
//! The sender knows nothing of tasks: it hands each attempt's [`BulkOutcome`] to its caller,
//! which records it (the pipeline, into the task registry).

use std::fmt;
use std::time::Duration;

use refresh_core::error::ErrorKind;
use refresh_core::es::bulk::BulkOptions;
use refresh_core::es::SearchClient;
use tokio_util::sync::CancellationToken;

use super::encode::Batch;
use super::response::ItemResult;
use super::response::{parse_bulk_response, request_status_is_retryable, triage, truncate};
use super::BulkConfig;

/// What every bulk request asks back: only what the retry logic reads.
pub const FILTER_PATH: &str = "errors,items.*.status,items.*.error";

/// A bulk request that did not come back with a usable response.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Retryable(String),
    #[error("{0}")]
    Fatal(String),
}

/// A document that was not indexed (`id`), or the documents of a batch given up (no `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotIndexed {
    pub id: Option<i64>,
    pub error: String,
}

impl fmt::Display for NotIndexed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id {
            Some(id) => write!(f, "id {id}: {}", self.error),
            None => f.write_str(&self.error),
        }
    }
}

/// The documents of a batch one attempt settled: indexed, or failed for good with why.
/// Documents still to retry are in neither count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    pub indexed: u64,
    pub failed: u64,
    pub errors: Vec<NotIndexed>,
}

impl BulkOutcome {
    /// `docs` documents given up for `reason`.
    fn abandoned(docs: usize, reason: String) -> BulkOutcome {
        BulkOutcome {
            indexed: 0,
            failed: docs as u64,
            errors: vec![NotIndexed {
                id: None,
                error: reason,
            }],
        }
    }
}

/// Why a batch could not be delivered at all: the task must stop.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BatchAborted(pub String);

/// Sends batches into one index. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BulkSender {
    client: SearchClient,
    index: String,
    config: BulkConfig,
    options: BulkOptions,
    /// Only labels log lines.
    task_id: String,
}

impl BulkSender {
    pub fn new(
        client: SearchClient,
        index: impl Into<String>,
        config: BulkConfig,
        task_id: impl Into<String>,
    ) -> BulkSender {
        let options = BulkOptions {
            filter_path: Some(FILTER_PATH.to_string()),
            timeout: Some(config.request_timeout),
        };
        BulkSender {
            client,
            index: index.into(),
            config,
            options,
            task_id: task_id.into(),
        }
    }

    pub fn config(&self) -> &BulkConfig {
        &self.config
    }

    /// One bulk request; parses the per-item results. The body goes out as is (no copy).
    pub async fn request(&self, batch: &Batch) -> Result<Vec<ItemResult>, RequestError> {
        let response = self
            .client
            .bulk_ndjson(&self.index, batch.body.clone(), &self.options)
            .await
            .map_err(|e| match e.kind {
                // A name that could address other indices: no attempt can succeed.
                ErrorKind::InvalidInput => RequestError::Fatal(e.message),
                // Refused, reset, timed out, cut off.
                _ => RequestError::Retryable(e.message),
            })?;
        let status = response.status.as_u16();
        if !(200..300).contains(&status) {
            let text = truncate(String::from_utf8_lossy(&response.body).into_owned(), 300);
            let message = format!("bulk request answered {status}: {text}");
            return Err(if request_status_is_retryable(status) {
                RequestError::Retryable(message)
            } else {
                RequestError::Fatal(message)
            });
        }
        parse_bulk_response(&response.body, batch.len())
            .map_err(|e| RequestError::Retryable(e.to_string()))
    }

    /// Indexes one batch: retries the whole request on transient failures and re-sends the
    /// items that came back 429/5xx, with back-off, up to `max_attempts`. Every attempt's
    /// settled documents go to `settled` as soon as they are known, so by the end every
    /// document was reported once, as indexed or failed. `Err` means the request itself could
    /// not be delivered (attempts exhausted, a fatal answer or cancellation): the caller stops
    /// the task.
    pub async fn send(
        &self,
        batch: Batch,
        cancel: &CancellationToken,
        mut settled: impl FnMut(BulkOutcome),
    ) -> Result<(), BatchAborted> {
        let config = &self.config;
        let mut pending = batch;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last_error = match self.request(&pending).await {
                Ok(results) => {
                    let triage = triage(results, attempt < config.max_attempts);
                    let errors: Vec<NotIndexed> = triage
                        .failed
                        .into_iter()
                        .map(|(position, error)| NotIndexed {
                            id: Some(pending.items[position].id),
                            error,
                        })
                        .collect();
                    settled(BulkOutcome {
                        indexed: triage.indexed,
                        failed: errors.len() as u64,
                        errors,
                    });
                    if triage.retry.is_empty() {
                        return Ok(());
                    }
                    pending = pending.subset(&triage.retry);
                    triage.retry_reason.unwrap_or_default()
                }
                Err(RequestError::Retryable(message)) if attempt < config.max_attempts => message,
                Err(error) => {
                    let message = format!("{error} (after {attempt} attempt(s))");
                    settled(BulkOutcome::abandoned(pending.len(), message.clone()));
                    return Err(BatchAborted(message));
                }
            };
            let delay = backoff_delay(attempt, config.retry_base, config.retry_max, jitter());
            tracing::warn!(task_id = %self.task_id, attempt, docs = pending.len(),
                delay_ms = delay.as_millis() as u64, error = %last_error, "bulk retry");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => {
                    let message = format!("stopped while retrying {} document(s): {last_error}", pending.len());
                    settled(BulkOutcome::abandoned(pending.len(), message.clone()));
                    return Err(BatchAborted(message));
                }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk::BatchBuilder;
    use axum::body::Bytes;
    use axum::http::{header, StatusCode};
    use axum::routing::post;
    use axum::Router;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

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
        // One client, refresh_core's: it turns the URL's user and password into basic auth
        // (percent-decoded; its tests check the header) and never shows them.
        let es = SearchClient::new("http://elastic:s%40cret@127.0.0.1:9200").unwrap();
        assert_eq!(es.endpoint(), "127.0.0.1:9200");
        assert!(!format!("{es:?}").contains("cret"));
        let sender = BulkSender::new(es, "image-x", BulkConfig::default(), "t1");
        assert!(!format!("{sender:?}").contains("cret"));
        assert!(SearchClient::new("not a url").is_err());
        assert!(SearchClient::new("ftp://x").is_err());
    }

    fn batch(ids: &[i64]) -> Batch {
        let mut builder = BatchBuilder::new(100, 1 << 20);
        for &id in ids {
            let pushed = builder.push(id, |out| {
                out.extend_from_slice(
                    format!("{{\"index\":{{\"_id\":\"{id}\"}}}}\n{{\"id\":{id}}}\n").as_bytes(),
                );
                Ok::<_, ()>(())
            });
            assert!(pushed.unwrap().is_none());
        }
        builder.finish().unwrap()
    }

    /// A fake Elasticsearch answering each bulk request with the next of `replies` (status,
    /// body); returns its URL and the request bodies it receives.
    async fn fake_es(replies: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<String>>>) {
        let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let received = bodies.clone();
        let bulk = move |body: Bytes| {
            let (replies, received) = (replies.clone(), received.clone());
            async move {
                received
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                let (status, reply) = replies.lock().unwrap().pop_front().expect("a reply");
                (
                    StatusCode::from_u16(status).unwrap(),
                    [(header::CONTENT_TYPE, "application/json")],
                    reply,
                )
            }
        };
        let app = Router::new().route("/{index}/_bulk", post(bulk));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, bodies)
    }

    fn fast_config(max_attempts: u32) -> BulkConfig {
        BulkConfig {
            max_attempts,
            retry_base: Duration::from_millis(1),
            retry_max: Duration::from_millis(5),
            request_timeout: Duration::from_secs(10),
            ..BulkConfig::default()
        }
    }

    #[tokio::test]
    async fn only_the_items_that_may_pass_are_sent_again() {
        let (url, bodies) = fake_es(vec![
            (
                200,
                r#"{"errors":true,"items":[{"index":{"status":201}},{"index":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},{"index":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}]}"#,
            ),
            (200, r#"{"errors":false}"#),
        ])
        .await;
        let sender = BulkSender::new(
            SearchClient::new(&url).unwrap(),
            "image-x",
            fast_config(3),
            "t1",
        );
        let mut outcomes = Vec::new();
        sender
            .send(batch(&[1, 2, 3]), &CancellationToken::new(), |o| {
                outcomes.push(o)
            })
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            vec![
                BulkOutcome {
                    indexed: 1,
                    failed: 1,
                    errors: vec![NotIndexed {
                        id: Some(3),
                        error: "400 mapper_parsing_exception: bad".into()
                    }],
                },
                BulkOutcome {
                    indexed: 1,
                    failed: 0,
                    errors: vec![]
                },
            ]
        );
        assert_eq!(
            outcomes[0].errors[0].to_string(),
            "id 3: 400 mapper_parsing_exception: bad"
        );
        let bodies = bodies.lock().unwrap().clone();
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[0].lines().count(), 6);
        assert_eq!(bodies[1], "{\"index\":{\"_id\":\"2\"}}\n{\"id\":2}\n");
    }

    #[tokio::test]
    async fn a_batch_is_given_up_after_its_attempts_and_counted_failed() {
        let (url, bodies) = fake_es(vec![(503, "{}"), (503, "{}")]).await;
        let sender = BulkSender::new(
            SearchClient::new(&url).unwrap(),
            "image-x",
            fast_config(2),
            "t1",
        );
        let mut outcomes = Vec::new();
        let err = sender
            .send(batch(&[1, 2]), &CancellationToken::new(), |o| {
                outcomes.push(o)
            })
            .await
            .unwrap_err();
        assert_eq!(err.0, "bulk request answered 503: {} (after 2 attempt(s))");
        assert_eq!(
            outcomes,
            vec![BulkOutcome {
                indexed: 0,
                failed: 2,
                errors: vec![NotIndexed {
                    id: None,
                    error: err.0.clone()
                }],
            }]
        );
        assert_eq!(bodies.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_refused_request_is_not_retried() {
        let (url, _bodies) = fake_es(vec![(400, r#"{"error":"bad"}"#)]).await;
        let sender = BulkSender::new(
            SearchClient::new(&url).unwrap(),
            "image-x",
            fast_config(5),
            "t1",
        );
        let mut failed = 0;
        let err = sender
            .send(batch(&[1]), &CancellationToken::new(), |o| {
                failed += o.failed
            })
            .await
            .unwrap_err();
        assert!(err.0.starts_with("bulk request answered 400"), "{}", err.0);
        assert!(err.0.ends_with("(after 1 attempt(s))"), "{}", err.0);
        assert_eq!(failed, 1);
    }
}
