//! Elasticsearch bulk indexing, split by job (on the model of Vector's Elasticsearch sink:
//! encoder → request → service → retry logic that reads the bulk response):
//!
//! - [`encode`]: documents → size-cut batches of pre-serialised NDJSON;
//! - [`response`]: a bulk response → each item's fate → what to retry;
//! - [`sender`]: one request through `refresh_core::es::SearchClient`, retried with back-off
//!   (the whole request on transient failures, only the failed items otherwise), reporting
//!   each attempt as a plain [`BulkOutcome`] for the caller to record.
//!
//! The hot path only copies bytes: a batch body is built once, sent as shared [`bytes::Bytes`],
//! and a retry re-sends slices of it instead of serialising documents again.

pub mod encode;
pub mod response;
pub mod sender;

use std::time::Duration;

pub use encode::{Batch, BatchBuilder, BatchItem};
pub use response::{ItemFate, ItemResult};
pub use sender::{BatchAborted, BulkOutcome, BulkSender, NotIndexed, RequestError};

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
