//! Bulk indexing through [`SearchClient`]: one `POST /{index}/_bulk` of a body the caller has
//! already serialised as NDJSON, so credentials (basic auth from the URL, kept out of every
//! message) are handled in one place for every Elasticsearch call of the project.
//!
//! Built for the hot path: the body is handed to the transport as [`Bytes`] (no copy, no
//! re-serialisation), and the answer comes back as its status and raw bytes, so the caller
//! parses only what it needs (e.g. `errors` and each item's `status` / `error`) into its own
//! types. Retrying failed items is the caller's job: only it knows which document a
//! position in the response stands for.

use std::time::Duration;

use bytes::Bytes;
use elasticsearch::http::headers::{HeaderMap, HeaderValue, CONTENT_TYPE};
use elasticsearch::http::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::{client_error, SearchClient};
use crate::error::StepResult;
use crate::names::validate_index_name;

/// Content type of a bulk body.
pub const NDJSON_CONTENT_TYPE: &str = "application/x-ndjson";

/// How to send bulk requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkOptions {
    /// `filter_path` that trims the response, e.g. `errors,items.*.status,items.*.error`
    /// (Elasticsearch then leaves out `items` entirely when `errors` is false).
    pub filter_path: Option<String>,
    /// Timeout of one request, from connecting to the end of the response body. `None` keeps
    /// the client's (90 s).
    pub timeout: Option<Duration>,
}

/// The answer to a bulk request: its HTTP status, whatever it is, and its raw body.
#[derive(Debug, Clone)]
pub struct BulkResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

impl BulkResponse {
    /// Parses the body into the caller's type.
    pub fn json<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }
}

impl SearchClient {
    /// `POST /{index}/_bulk` of `body`: complete NDJSON (action and source lines, each ending
    /// in `\n`). A [`Bytes`] body is sent without being copied; a `Vec<u8>` is taken over.
    ///
    /// Every HTTP status comes back as a [`BulkResponse`] (429 and 5xx included: whether and
    /// what to retry depends on the documents, which only the caller knows). `Err` means no
    /// usable answer: an index name that could address other indices (`InvalidInput`), or a
    /// transport failure — refused, reset, timed out, response cut off — as
    /// `From<elasticsearch::Error>` classifies it, with the endpoint and never the credentials.
    pub async fn bulk_ndjson(
        &self,
        index: &str,
        body: impl Into<Bytes>,
        options: &BulkOptions,
    ) -> StepResult<BulkResponse> {
        validate_index_name(index)?;
        let mut headers = HeaderMap::with_capacity(1);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(NDJSON_CONTENT_TYPE));
        let filter = options.filter_path.as_deref().map(|f| [("filter_path", f)]);
        let response = self
            .es
            .transport()
            .send(
                Method::Post,
                &format!("/{index}/_bulk"),
                headers,
                filter.as_ref().map(|f| f.as_slice()),
                Some(body.into()),
                options.timeout,
            )
            .await
            .map_err(|e| client_error("bulk", &self.endpoint, e))?;
        let status = response.status_code();
        let body = response
            .bytes()
            .await
            .map_err(|e| client_error("bulk", &self.endpoint, e))?;
        Ok(BulkResponse { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::es::index::index_exists;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What a one-shot fake Elasticsearch saw: request head (lower-cased) and body.
    struct Seen {
        head: String,
        body: Vec<u8>,
    }

    /// Serves one request on loopback with `reply` (a full HTTP response), or never answers
    /// when `reply` is `None`.
    async fn fake_es(reply: Option<&'static str>) -> (String, tokio::task::JoinHandle<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                let n = conn.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            while buf.len() < head_end + length {
                let n = conn.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            match reply {
                Some(reply) => conn.write_all(reply.as_bytes()).await.unwrap(),
                None => tokio::time::sleep(Duration::from_secs(30)).await,
            }
            Seen {
                head,
                body: buf[head_end..].to_vec(),
            }
        });
        (format!("127.0.0.1:{port}"), handle)
    }

    const OK_REPLY: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n{\"errors\":false}";

    #[tokio::test]
    async fn posts_the_body_as_is_with_basic_auth_from_the_url() {
        let (addr, seen) = fake_es(Some(OK_REPLY)).await;
        let client = SearchClient::new(&format!("http://elastic:s%40cret@{addr}")).unwrap();
        let body = Bytes::from_static(b"{\"index\":{\"_id\":\"1\"}}\n{\"a\":1}\n");
        let options = BulkOptions {
            filter_path: Some("errors,items.*.status".into()),
            timeout: Some(Duration::from_secs(5)),
        };
        let response = client
            .bulk_ndjson("image-x", body.clone(), &options)
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::OK);
        let parsed: serde_json::Value = response.json().unwrap();
        assert_eq!(parsed["errors"], false);
        let seen = seen.await.unwrap();
        assert!(
            seen.head.starts_with(
                "post /image-x/_bulk?filter_path=errors%2citems.*.status http/1.1\r\n"
            ),
            "{}",
            seen.head
        );
        assert!(seen.head.contains("content-type: application/x-ndjson\r\n"));
        // base64("elastic:s@cret"): the URL's credentials, percent-decoded, as basic auth.
        assert!(seen
            .head
            .contains("authorization: basic zwxhc3rpyzpzqgnyzxq=\r\n"));
        assert_eq!(seen.body, body.as_ref());
    }

    #[tokio::test]
    async fn every_status_is_returned_to_the_caller() {
        let (addr, _seen) = fake_es(Some(
            "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 2\r\n\r\n{}",
        ))
        .await;
        let client = SearchClient::new(&format!("http://{addr}")).unwrap();
        let response = client
            .bulk_ndjson("image-x", b"x\n".to_vec(), &BulkOptions::default())
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.body.as_ref(), b"{}");
    }

    #[tokio::test]
    async fn the_request_timeout_applies_and_names_no_secret() {
        let (addr, _seen) = fake_es(None).await;
        let client = SearchClient::new(&format!("http://elastic:hunter2@{addr}")).unwrap();
        let options = BulkOptions {
            filter_path: None,
            timeout: Some(Duration::from_millis(300)),
        };
        let started = std::time::Instant::now();
        let err = client
            .bulk_ndjson("image-x", Bytes::from_static(b"x\n"), &options)
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(err.kind, ErrorKind::TransientSearch, "{}", err.message);
        assert!(err.message.starts_with("bulk ("), "{}", err.message);
        assert!(!err.message.contains("hunter2"), "{}", err.message);
    }

    #[tokio::test]
    async fn names_that_could_address_other_indices_are_refused() {
        let client = SearchClient::new("http://127.0.0.1:9").unwrap();
        for bad in ["_all", "a,b", "a/_delete_by_query", "image*"] {
            let err = client
                .bulk_ndjson(bad, Bytes::new(), &BulkOptions::default())
                .await
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{bad}");
            let err = index_exists(&client, bad).await.unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[tokio::test]
    async fn index_exists_reads_head_statuses() {
        let (addr, _seen) =
            fake_es(Some("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")).await;
        let client = SearchClient::new(&format!("http://{addr}")).unwrap();
        assert!(!index_exists(&client, "image-x").await.unwrap());
        let (addr, seen) = fake_es(Some("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")).await;
        let client = SearchClient::new(&format!("http://{addr}")).unwrap();
        assert!(index_exists(&client, "image-x").await.unwrap());
        assert!(seen
            .await
            .unwrap()
            .head
            .starts_with("head /image-x http/1.1"));
    }
}
