//! Elasticsearch side of the refresh: index creation from the versioned settings / mappings
//! (`crates/refresh-core/es/<media>.json`), finishing, the filtered reindex, alias promotion,
//! deletion of old indices and document counts.
//!
//! Every call goes through [`SearchClient::call`] (or [`SearchClient::bulk_ndjson`]) with plain
//! JSON over the REST API, using only endpoints and parameters that Elasticsearch 7.9 and 8.x
//! both accept (no mapping types, no deprecated parameters; docs/OPERATIONS.md "Elasticsearch
//! versions" lists them). Index and alias names come from `MediaType` / a validated suffix,
//! and are checked again by [`crate::names::validate_index_name`] before they reach a URL path.
//! The client is built in one place, [`SearchClient::from_settings`], from the secret's
//! `es_url`, `es_auth` and `es_ca_cert` ([`connection`]), for the Lambdas and the worker alike.

pub mod alias;
pub mod bulk;
pub mod connection;
pub mod counts;
pub mod filtered;
pub mod index;
pub mod preflight;
pub mod reindex;
pub mod search_guard;
pub mod terms;

pub use alias::{
    delete_indices, delete_unaliased, indices_of_alias, promote_alias, promote_aliases,
    AliasPromotion, AliasesPromotion, DeletedIndices, RemovedIndices,
};
pub use connection::{CaCertificate, SearchAuth, SearchSettings, SettingError};
pub use counts::{count_documents, count_documents_paged, DocumentCounts};
pub use filtered::{verify_filtered, FilteredVerification, VerifyOptions};
pub use index::{
    create_index, create_index_like, finish_index, index_body, index_health, CreatedIndex,
    IndexHealth,
};
pub use preflight::{promotion_preflight, PreflightReport};
pub use reindex::{
    cancel_reindex_into, get_task, sensitive_documents_query, sensitive_terms_query,
    start_filtered_reindex, FilteredReindexStarted, ReindexOptions, Slices, TaskStatus,
};
pub use search_guard::{check_search_guard, SearchGuardReport};
pub use terms::{load_sensitive_terms, parse_sensitive_terms};

use crate::error::{ErrorKind, StepError, StepResult};
use crate::settings::Secrets;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::HeaderMap;
use elasticsearch::http::request::JsonBody;
use elasticsearch::http::transport::{BuildError, SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::{Method, StatusCode};
use elasticsearch::Elasticsearch;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::time::Duration;

/// Per-request timeout. Long operations (reindex) run as tasks, so no call should take long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

/// Longest Elasticsearch error reason quoted in a step error.
const MAX_REASON_CHARS: usize = 500;

/// An Elasticsearch client for one cluster. Cheap to clone.
///
/// The underlying `elasticsearch` client is deliberately not exposed: its `Debug` prints the
/// credentials.
#[derive(Clone)]
pub struct SearchClient {
    es: Elasticsearch,
    /// `host:port`, for messages (never the credentials).
    endpoint: String,
}

impl std::fmt::Debug for SearchClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchClient")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// A response that was not a transient failure: its status and JSON body (`Null` when the
/// body is empty or not JSON).
#[derive(Debug, Clone)]
pub struct EsResponse {
    pub status: StatusCode,
    pub body: Value,
}

impl EsResponse {
    /// The body of a 2xx response; any other status becomes a step error for `operation`.
    pub fn into_success(self, operation: &str) -> StepResult<Value> {
        if self.status.is_success() {
            Ok(self.body)
        } else {
            Err(status_error(operation, self.status, &self.body))
        }
    }
}

impl SearchClient {
    /// A client for `url` alone (`http(s)://[user:password@]host[:port][/path]`), e.g. a test's
    /// `ES_URL`. Credentials in the URL become basic auth and are kept out of every message.
    pub fn new(url: &str) -> StepResult<SearchClient> {
        let settings = SearchSettings::from_url(url).map_err(|e| {
            StepError::new(
                ErrorKind::Configuration,
                format!("Elasticsearch settings: {e}"),
            )
        })?;
        SearchClient::from_settings(&settings)
    }

    /// A client for the secret's cluster (`es_url`, `es_auth`, `es_ca_cert`).
    pub fn from_secrets(secrets: &Secrets) -> StepResult<SearchClient> {
        SearchClient::from_settings(&secrets.es)
    }

    /// The one place a client is built: the Lambdas (through [`SearchClient::from_secrets`])
    /// and the indexer worker both come here.
    pub fn from_settings(settings: &SearchSettings) -> StepResult<SearchClient> {
        let endpoint = settings.endpoint().to_string();
        let mut builder =
            TransportBuilder::new(SingleNodeConnectionPool::new(settings.url().clone()))
                .timeout(REQUEST_TIMEOUT)
                .enable_meta_header(false);
        if let Some(auth) = settings.auth() {
            builder = builder.auth(credentials(auth));
        }
        if let Some(ca) = settings.ca_cert() {
            // Trusted besides the client's bundled public roots; host names are still verified.
            let mut chain: Option<Certificate> = None;
            for der in ca.der_certificates() {
                let certificate = Certificate::from_der(der).map_err(|e| {
                    StepError::new(
                        ErrorKind::Configuration,
                        format!("es_ca_cert: cannot load the certificate: {e}"),
                    )
                })?;
                match chain.as_mut() {
                    Some(chain) => chain.append(certificate),
                    None => chain = Some(certificate),
                }
            }
            if let Some(chain) = chain {
                builder = builder.cert_validation(CertificateValidation::Full(chain));
            }
        }
        let transport = builder.build().map_err(|e| {
            let hint = if settings.ca_cert().is_some() {
                " (check es_ca_cert)"
            } else {
                ""
            };
            StepError::new(
                ErrorKind::Configuration,
                format!(
                    "cannot build the Elasticsearch client for {endpoint}{hint}: {}",
                    build_error_chain(&e)
                ),
            )
        })?;
        Ok(SearchClient {
            es: Elasticsearch::new(transport),
            endpoint,
        })
    }

    /// `host:port` of the cluster, safe to log.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends one request. Connection failures, 429 and 5xx are `TransientSearch` errors; any
    /// other status is returned for the caller to interpret (e.g. 404 for a missing alias).
    pub async fn call(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> StepResult<EsResponse> {
        tracing::debug!(operation, path, "elasticsearch request");
        let response = self
            .es
            .transport()
            .send(
                method,
                path,
                HeaderMap::new(),
                Some(query),
                body.map(JsonBody::new),
                None,
            )
            .await
            .map_err(|e| client_error(operation, &self.endpoint, e))?;
        let status = response.status_code();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| client_error(operation, &self.endpoint, e))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if is_transient_status(status) {
            return Err(status_error(operation, status, &body));
        }
        Ok(EsResponse { status, body })
    }
}

/// The transport's credentials. The `elasticsearch` crate turns them into the
/// `Authorization` header, marked sensitive.
fn credentials(auth: &SearchAuth) -> Credentials {
    match auth {
        SearchAuth::Basic { username, password } => Credentials::Basic(
            username.expose_secret().to_string(),
            password.expose_secret().to_string(),
        ),
        SearchAuth::ApiKey { id, key } => Credentials::ApiKey(
            id.expose_secret().to_string(),
            key.expose_secret().to_string(),
        ),
        // Validated as base64 when the secret was read: the crate's header conversion (which
        // panics on invalid characters) always succeeds.
        SearchAuth::EncodedApiKey(encoded) => {
            Credentials::EncodedApiKey(encoded.expose_secret().to_string())
        }
    }
}

/// `BuildError` reports its cause through the deprecated `cause()` only, so `source()` finds
/// nothing: unwrap it by hand.
fn build_error_chain(error: &BuildError) -> String {
    match error {
        BuildError::Cert(e) => error_chain(e),
        BuildError::Io(e) => error_chain(e),
        BuildError::Config(e) => redact(e),
    }
}

/// An error and its causes, `a: b: c`, with any URL credentials removed.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![redact(&error.to_string())];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = redact(&cause.to_string());
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

fn is_transient_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The step error for an Elasticsearch answer with a non-2xx status: 429 / 5xx are transient,
/// 401 / 403 a configuration problem, anything else an `InvalidState` an operator must see.
pub fn status_error(operation: &str, status: StatusCode, body: &Value) -> StepError {
    let kind = if is_transient_status(status) {
        ErrorKind::TransientSearch
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        ErrorKind::Configuration
    } else {
        ErrorKind::InvalidState
    };
    let reason = error_reason(body);
    let message = if reason.is_empty() {
        format!("{operation}: Elasticsearch answered {}", status.as_u16())
    } else {
        format!(
            "{operation}: Elasticsearch answered {}: {reason}",
            status.as_u16()
        )
    };
    StepError::new(kind, message)
}

/// `type: reason` of an Elasticsearch error body (or its plain string error).
pub fn error_reason(body: &Value) -> String {
    let text = match &body["error"] {
        Value::String(s) => s.clone(),
        Value::Object(error) => {
            let ty = error.get("type").and_then(Value::as_str).unwrap_or("error");
            match error.get("reason").and_then(Value::as_str) {
                Some(reason) => format!("{ty}: {reason}"),
                None => ty.to_string(),
            }
        }
        _ => String::new(),
    };
    let text = redact(&text);
    match text.char_indices().nth(MAX_REASON_CHARS) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

fn client_error(operation: &str, endpoint: &str, error: elasticsearch::Error) -> StepError {
    let mut step_error = StepError::from(error);
    step_error.message = format!("{operation} ({endpoint}): {}", step_error.message);
    step_error
}

impl From<elasticsearch::Error> for StepError {
    /// Transport failures (connection refused, reset, timeout), 429 and 5xx are transient;
    /// JSON errors are internal. The message never carries credentials.
    fn from(error: elasticsearch::Error) -> StepError {
        // An untrusted certificate will not fix itself: an operator must set es_ca_cert.
        if let Some(tls) = certificate_failure(&error) {
            return StepError::new(
                ErrorKind::Configuration,
                format!(
                    "Elasticsearch request failed: the server's TLS certificate was refused \
                     ({tls}); set es_ca_cert in the refresh secret to the CA that signed it, \
                     and make sure the certificate names the host in es_url"
                ),
            );
        }
        let kind = if let Some(status) = error.status_code() {
            if is_transient_status(status) {
                ErrorKind::TransientSearch
            } else {
                ErrorKind::InvalidState
            }
        } else if error.is_json() {
            ErrorKind::Internal
        } else if is_transport_failure(&error) {
            ErrorKind::TransientSearch
        } else {
            ErrorKind::Internal
        };
        let detail = match reqwest_source(&error) {
            // reqwest's message may embed the request URL; drop it, keep the cause chain.
            Some(e) => describe_reqwest(e),
            None => redact(&error.to_string()),
        };
        StepError::new(kind, format!("Elasticsearch request failed: {detail}"))
    }
}

/// The TLS library's verdict when the server's certificate failed verification. rustls' error
/// travels inside (nested) `io::Error`s, whose `source()` skips the error they wrap, so each
/// I/O error is opened with `get_ref()`.
fn certificate_failure(error: &elasticsearch::Error) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
            .then(|| tls.to_string());
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner),
            None => e.source(),
        };
    }
    None
}

fn reqwest_source(error: &elasticsearch::Error) -> Option<&reqwest::Error> {
    std::error::Error::source(error).and_then(|s| s.downcast_ref::<reqwest::Error>())
}

fn is_transport_failure(error: &elasticsearch::Error) -> bool {
    if error.is_timeout() {
        return true;
    }
    match reqwest_source(error) {
        Some(e) => e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
        // The only non-reqwest source left is an I/O error.
        None => std::error::Error::source(error).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

fn describe_reqwest(error: &reqwest::Error) -> String {
    let what = if error.is_connect() {
        "connection failed"
    } else if error.is_timeout() {
        "timed out"
    } else if error.is_body() || error.is_decode() {
        "reading the response failed"
    } else {
        "request failed"
    };
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push(redact(&cause.to_string()));
        source = cause.source();
    }
    if causes.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {}", causes.join(": "))
    }
}

/// Removes `user:password@` from any URL in a message.
pub fn redact(message: &str) -> String {
    static USERINFO: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = USERINFO.get_or_init(|| {
        regex::Regex::new(r"(?i)([a-z][a-z0-9+.-]*://)[^/\s@]+@").unwrap_or_else(|_| unreachable!())
    });
    re.replace_all(message, "${1}***@").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_errors_are_classified() {
        let body =
            json!({"error": {"type": "es_rejected_execution_exception", "reason": "queue full"}});
        let e = status_error("bulk", StatusCode::TOO_MANY_REQUESTS, &body);
        assert_eq!(e.kind, ErrorKind::TransientSearch);
        assert_eq!(
            e.message,
            "bulk: Elasticsearch answered 429: es_rejected_execution_exception: queue full"
        );
        assert_eq!(
            status_error("x", StatusCode::BAD_GATEWAY, &Value::Null).kind,
            ErrorKind::TransientSearch
        );
        assert_eq!(
            status_error("x", StatusCode::UNAUTHORIZED, &Value::Null).kind,
            ErrorKind::Configuration
        );
        let e = status_error(
            "get alias",
            StatusCode::NOT_FOUND,
            &json!({"error": "alias [x] missing"}),
        );
        assert_eq!(e.kind, ErrorKind::InvalidState);
        assert!(e.message.ends_with("404: alias [x] missing"));
    }

    #[test]
    fn long_reasons_are_cut() {
        let body = json!({"error": {"type": "t", "reason": "é".repeat(2000)}});
        assert!(error_reason(&body).chars().count() <= MAX_REASON_CHARS + 1);
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact("error sending request for url (https://elastic:s3cr3t@es.example:9200/_bulk)"),
            "error sending request for url (https://***@es.example:9200/_bulk)"
        );
        assert_eq!(redact("http://host:9200/x"), "http://host:9200/x");
    }

    #[test]
    fn client_keeps_credentials_out_of_its_debug_and_endpoint() {
        let client = SearchClient::new("https://elastic:p%40ss@es.example:9243/").unwrap();
        assert_eq!(client.endpoint(), "es.example:9243");
        let debug = format!("{client:?}");
        assert!(!debug.contains("p@ss") && !debug.contains("p%40ss") && !debug.contains("elastic"));
        assert_eq!(
            SearchClient::new("http://127.0.0.1").unwrap().endpoint(),
            "127.0.0.1:80"
        );
    }

    #[test]
    fn bad_urls_are_configuration_errors_without_the_url() {
        for bad in [
            "not a url",
            "ftp://user:secret@host/",
            "http://user:secret@:9200",
        ] {
            let err = SearchClient::new(bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Configuration, "{bad}");
            assert!(!err.message.contains("secret"), "{}", err.message);
        }
    }

    #[test]
    fn a_ca_the_tls_library_cannot_load_fails_the_build_naming_es_ca_cert() {
        // A DER SEQUENCE passes the secret's PEM check but is no certificate.
        let settings = SearchSettings::new(
            "https://es.example:9243",
            None,
            Some("-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n"),
        )
        .unwrap();
        let err = SearchClient::from_settings(&settings).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Configuration);
        assert!(
            err.message.starts_with(
                "cannot build the Elasticsearch client for es.example:9243 (check es_ca_cert): "
            ),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn connection_refused_is_transient_and_names_no_secret() {
        // Port 9 (discard) on loopback: nothing listens there.
        let client = SearchClient::new("http://elastic:hunter2@127.0.0.1:9").unwrap();
        let err = client
            .call("cluster health", Method::Get, "/_cluster/health", &[], None)
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::TransientSearch, "{}", err.message);
        assert!(
            err.message.starts_with("cluster health (127.0.0.1:9): "),
            "{}",
            err.message
        );
        assert!(
            !err.message.contains("hunter2") && !err.message.contains("elastic:"),
            "{}",
            err.message
        );
    }
}
