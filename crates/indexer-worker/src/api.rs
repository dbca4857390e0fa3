//! The HTTP API (docs/ARCHITECTURE.md, "Indexer worker HTTP API").

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use refresh_core::es::alias::{resolve_name, NameTarget};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::pipeline::{run_task, PipelineConfig, Services};
use crate::request::{parse_request, RequestError, Spec};
use crate::sql_task::{run_sql_task, SqlConfig, SqlSpec};
use crate::tasks::{Entry, Started, TaskRegistry, TaskSpec};

/// Everything the handlers share.
pub struct AppState {
    pub registry: TaskRegistry,
    pub services: Services,
    pub pipeline: PipelineConfig,
    pub sql: SqlConfig,
    /// Bearer token every endpoint but `/healthcheck` requires. Secret.
    pub token: String,
    /// Cancelled on SIGTERM or idle shutdown; running tasks stop on it.
    pub shutdown: CancellationToken,
    /// Running task futures, so shutdown can wait for them.
    pub running: TaskTracker,
}

pub fn router(state: Arc<AppState>) -> Router {
    let protected = Router::new()
        .route("/task", get(list_tasks).post(start_task))
        .route("/task/{id}", get(task_status).delete(cancel_task))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthcheck", get(healthcheck))
        .merge(protected)
        .fallback(not_found)
        // After every route: it is set on the routes present.
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Every refusal the API answers, as `{"message": …}` with its status — axum's own
/// rejections (body too large, a body or path it cannot read, a wrong method) included, so a
/// caller never has to parse a plain-text error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not a valid task.
    #[error(transparent)]
    BadRequest(#[from] RequestError),
    /// 400: reindexing into a missing index would create it with dynamic mappings.
    /// (`field`: `target_index` or `filtered_index`.)
    #[error("{field} {index:?} does not exist: create it before reindexing into it")]
    MissingIndex { field: &'static str, index: String },
    /// 400 (not 409, which callers take for "worker busy, try again"): an alias name. Bulk
    /// requests through it would write unfiltered documents into the index it serves.
    #[error("{field} {index:?} is an alias (of {}), not an index: a worker writes only into a new, unaliased <media>-<suffix> index", .indices.join(", "))]
    AliasTarget {
        field: &'static str,
        index: String,
        indices: Vec<String>,
    },
    /// 400, likewise: an index an alias points at is serving (or about to); never written by a worker.
    #[error("{field} {index:?} is behind alias {}: a worker writes only into a new, unaliased <media>-<suffix> index", .aliases.join(", "))]
    AliasedIndex {
        field: &'static str,
        index: String,
        aliases: Vec<String>,
    },
    /// 400: a dual-write task on a worker started without `SENSITIVE_TERMS_URL` could not
    /// tell which documents the filtered index must leave out.
    #[error("filtered_index: this worker has no sensitive terms list (SENSITIVE_TERMS_URL is not set), so it cannot write a filtered index")]
    NoSensitiveTerms,
    /// What an extractor refused, with its status: 413 (body over the limit), 400 (a body
    /// that cannot be read or parsed, a bad path), 415 (not JSON).
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    /// 405: a known path with another method.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// 401, with `WWW-Authenticate: Bearer`.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// 404: an unknown task id.
    #[error("No task found with id {0}.")]
    TaskNotFound(String),
    /// 404: an unknown path.
    #[error("no such endpoint")]
    NoSuchEndpoint,
    /// 409: one task at a time.
    #[error("task {id} ({what}) is still running; one task at a time")]
    Busy { id: String, what: String },
    /// 503: SIGTERM or idle shutdown has begun.
    #[error("worker is shutting down")]
    ShuttingDown,
    /// 503: Elasticsearch could not say whether the target index exists.
    #[error("{0}")]
    SearchUnavailable(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_)
            | ApiError::MissingIndex { .. }
            | ApiError::AliasTarget { .. }
            | ApiError::AliasedIndex { .. }
            | ApiError::NoSensitiveTerms => StatusCode::BAD_REQUEST,
            ApiError::Rejected { status, .. } => *status,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::TaskNotFound(_) | ApiError::NoSuchEndpoint => StatusCode::NOT_FOUND,
            ApiError::Busy { .. } => StatusCode::CONFLICT,
            ApiError::ShuttingDown | ApiError::SearchUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        let message = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => format!(
                "request body is larger than the worker accepts ({})",
                rejection.body_text()
            ),
            _ => format!("request body could not be read: {}", rejection.body_text()),
        };
        ApiError::Rejected {
            status: rejection.status(),
            message,
        }
    }
}

impl From<JsonRejection> for ApiError {
    /// The API answers 400 for every body it cannot use (axum's `Json` says 422 for JSON of
    /// the wrong shape), 415 without a JSON content type and 413 over the size limit.
    fn from(rejection: JsonRejection) -> Self {
        let status = match rejection.status() {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            other => other,
        };
        ApiError::Rejected {
            status,
            message: format!("request body refused: {}", rejection.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::Rejected {
            status: rejection.status(),
            message: format!("request path refused: {}", rejection.body_text()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status(), Json(json!({ "message": self.to_string() }))).into_response();
        if let ApiError::Unauthorized = self {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

async fn healthcheck() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn not_found() -> ApiError {
    ApiError::NoSuchEndpoint
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Constant-time comparison so the token cannot be guessed byte by byte from timings.
pub fn token_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, presented)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && bool::from(presented.trim().as_bytes().ct_eq(token.as_bytes()))
}

async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if token_matches(request.headers(), &state.token) {
        Ok(next.run(request).await)
    } else {
        Err(ApiError::Unauthorized)
    }
}

async fn list_tasks(State(state): State<Arc<AppState>>) -> Response {
    let statuses: Vec<_> = state.registry.all().iter().map(Entry::status).collect();
    Json(statuses).into_response()
}

async fn task_status(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    match state.registry.get(&id) {
        Some(task) => Ok(Json(task.status()).into_response()),
        None => Err(ApiError::TaskNotFound(id)),
    }
}

/// `DELETE /task/{id}`: stops a running task (a SQL job cancels its statements on the
/// server); 202 with the message, the status then says how it ended. A finished task is left
/// as it is (200).
async fn cancel_task(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let task = state
        .registry
        .get(&id)
        .ok_or_else(|| ApiError::TaskNotFound(id.clone()))?;
    let (status, message) = if task.is_active() {
        task.cancel();
        tracing::warn!(task_id = %id, "task cancellation requested");
        (StatusCode::ACCEPTED, "Cancellation requested.")
    } else {
        (StatusCode::OK, "Task already finished.")
    };
    Ok((status, Json(json!({"message": message, "task_id": id}))).into_response())
}

async fn start_task(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // The body is parsed by hand so every malformed request is a 400 with a message
    // (axum's `Json` would answer 415/422 for some of them); a body over the limit is a 413
    // with a message.
    let spec = parse_request(&body?, state.sql.default_parallelism)?;
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let (task_id, created, already) = match spec {
        Spec::Reindex(spec) => {
            let (id, created) = start_reindex(&state, spec).await?;
            (id, created, "Task for this range is already running.")
        }
        Spec::Sql(spec) => {
            let (id, created) = start_sql(&state, spec)?;
            (id, created, "This SQL task is already running.")
        }
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let body = json!({
        "message": if created { "Successfully scheduled task." } else { already },
        "task_id": task_id,
        "status_check": format!("http://{host}/task/{task_id}"),
    });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

fn busy(other: &Entry) -> ApiError {
    ApiError::Busy {
        id: other.id().to_string(),
        what: other.describe(),
    }
}

/// Starts (or finds running) a reindex; returns its id and whether it is new.
async fn start_reindex(state: &Arc<AppState>, spec: TaskSpec) -> Result<(String, bool), ApiError> {
    check_target(&state.services.es, "target_index", &spec.target_index).await?;
    if let Some(filtered) = &spec.filtered_index {
        if state.services.sensitive_terms_url.is_none() {
            return Err(ApiError::NoSensitiveTerms);
        }
        check_target(&state.services.es, "filtered_index", filtered).await?;
    }
    let (task, created) = match state.registry.start(spec) {
        Started::New(task) => (task, true),
        Started::Existing(task) => (task, false),
        Started::Busy(other) => return Err(busy(&other)),
    };
    if created {
        let (services, pipeline) = (state.services.clone(), state.pipeline.clone());
        let registry_state = state.clone();
        let task_for_run = task.clone();
        state.running.spawn(async move {
            let cancel = task_for_run.cancel.clone();
            run_task(services, pipeline, task_for_run, cancel).await;
            registry_state.registry.touch();
        });
    }
    Ok((task.id.clone(), created))
}

/// Starts (or finds running) a SQL task; returns its id and whether it is new.
fn start_sql(state: &Arc<AppState>, spec: SqlSpec) -> Result<(String, bool), ApiError> {
    let (task, created) = match state.registry.start_sql(spec) {
        Started::New(task) => (task, true),
        Started::Existing(task) => (task, false),
        Started::Busy(other) => return Err(busy(&other)),
    };
    if created {
        let (services, sql) = (state.services.clone(), state.sql.clone());
        let registry_state = state.clone();
        let task_for_run = task.clone();
        state.running.spawn(async move {
            run_sql_task(services, sql, task_for_run).await;
            registry_state.registry.touch();
        });
    }
    Ok((task.id.clone(), created))
}

/// The target must be an existing index no alias points at, and not an alias itself (its
/// name was checked by `request`): a worker writes unfiltered documents, so with a temp table
/// present it could otherwise overwrite a serving index.
async fn check_target(
    es: &refresh_core::es::SearchClient,
    field: &'static str,
    index: &str,
) -> Result<(), ApiError> {
    let target = resolve_name(es, index)
        .await
        .map_err(|e| ApiError::SearchUnavailable(e.message))?;
    let index = index.to_string();
    match target {
        NameTarget::Index { aliases } if aliases.is_empty() => Ok(()),
        NameTarget::Index { aliases } => Err(ApiError::AliasedIndex {
            field,
            index,
            aliases,
        }),
        NameTarget::Alias { indices } => Err(ApiError::AliasTarget {
            field,
            index,
            indices,
        }),
        NameTarget::Missing => Err(ApiError::MissingIndex { field, index }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[tokio::test]
    async fn errors_answer_their_status_and_message() {
        let cases = [
            (
                ApiError::from(RequestError::EmptyRange {
                    start_id: 5,
                    end_id: 4,
                }),
                400,
                "start_id 5 is greater than end_id 4",
            ),
            (
                ApiError::MissingIndex {
                    field: "target_index",
                    index: "image-x".into(),
                },
                400,
                "target_index \"image-x\" does not exist: create it before reindexing into it",
            ),
            (
                ApiError::MissingIndex {
                    field: "filtered_index",
                    index: "image-x-filtered".into(),
                },
                400,
                "filtered_index \"image-x-filtered\" does not exist: create it before reindexing into it",
            ),
            (
                ApiError::NoSensitiveTerms,
                400,
                "filtered_index: this worker has no sensitive terms list (SENSITIVE_TERMS_URL is not set), so it cannot write a filtered index",
            ),
            (ApiError::Unauthorized, 401, "missing or wrong bearer token"),
            (
                ApiError::TaskNotFound("abc".into()),
                404,
                "No task found with id abc.",
            ),
            (ApiError::NoSuchEndpoint, 404, "no such endpoint"),
            (
                ApiError::Busy {
                    id: "t1".into(),
                    what: "1..=9".into(),
                },
                409,
                "task t1 (1..=9) is still running; one task at a time",
            ),
            (
                ApiError::AliasTarget {
                    field: "target_index",
                    index: "image-serving".into(),
                    indices: vec!["image-a".into()],
                },
                400,
                "target_index \"image-serving\" is an alias (of image-a), not an index: a worker writes only into a new, unaliased <media>-<suffix> index",
            ),
            (
                ApiError::AliasedIndex {
                    field: "target_index",
                    index: "image-a".into(),
                    aliases: vec!["image".into(), "x".into()],
                },
                400,
                "target_index \"image-a\" is behind alias image, x: a worker writes only into a new, unaliased <media>-<suffix> index",
            ),
            (
                ApiError::Rejected {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    message: "too big".into(),
                },
                413,
                "too big",
            ),
            (
                ApiError::MethodNotAllowed,
                405,
                "method not allowed on this endpoint",
            ),
            (ApiError::ShuttingDown, 503, "worker is shutting down"),
            (
                ApiError::SearchUnavailable("es down".into()),
                503,
                "es down",
            ),
        ];
        for (error, status, text) in cases {
            assert_eq!(error.to_string(), text);
            let unauthorized = matches!(error, ApiError::Unauthorized);
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status, "{text}");
            assert_eq!(
                response.headers().get(header::WWW_AUTHENTICATE).is_some(),
                unauthorized,
                "{text}"
            );
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body, json!({ "message": text }));
        }
    }

    /// A fake Elasticsearch answering `GET /{name}/_alias` for a few names: `image-new` (an
    /// index without alias), `image-live` (behind `image`), `image-serving` (an alias of
    /// `image-live`); anything else is missing.
    async fn fake_es() -> String {
        async fn aliases(Path(name): Path<String>) -> Response {
            let body =
                match name.as_str() {
                    "image-new" => json!({"image-new": {"aliases": {}}}),
                    "image-live" => json!({"image-live": {"aliases": {"image": {}}}}),
                    "image-serving" => {
                        json!({"image-live": {"aliases": {"image": {}, "image-serving": {}}}})
                    }
                    _ => return (
                        StatusCode::NOT_FOUND,
                        Json(
                            json!({"error": {"type": "index_not_found_exception"}, "status": 404}),
                        ),
                    )
                        .into_response(),
                };
            Json(body).into_response()
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().route("/{name}/_alias", get(aliases));
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    /// The worker's router on a loopback port; its database is unreachable (tasks fail at once).
    async fn serve_worker(es_url: &str) -> String {
        let state = Arc::new(AppState {
            registry: TaskRegistry::default(),
            services: Services {
                db_url: "postgres://worker@127.0.0.1:1/api".into(),
                es: refresh_core::es::SearchClient::new(es_url).unwrap(),
                catalog_fdw: None,
                sensitive_terms_url: None,
            },
            pipeline: PipelineConfig::default(),
            sql: SqlConfig::default(),
            token: "t0ken".into(),
            shutdown: CancellationToken::new(),
            running: TaskTracker::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router(state)).await });
        url
    }

    fn task(index: &str) -> serde_json::Value {
        json!({"model_name": "image", "table_name": "temp_import_image",
               "target_index": index, "start_id": 1, "end_id": 10})
    }

    async fn answer(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
        let response = request.bearer_auth("t0ken").send().await.unwrap();
        let status = response.status().as_u16();
        let json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let text = response.text().await.unwrap();
        assert!(json, "HTTP {status} is not JSON: {text:?}");
        let body: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("HTTP {status}: {e}: {text:?}"));
        (status, body)
    }

    fn message(body: &serde_json::Value) -> &str {
        body["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message in {body}"))
    }

    #[tokio::test]
    async fn only_a_new_unaliased_index_is_reindexed_into() {
        let worker = serve_worker(&fake_es().await).await;
        let http = reqwest::Client::new();
        let post = |index: &str| http.post(format!("{worker}/task")).json(&task(index));
        for (index, status, says) in [
            ("image-serving", 400, "is an alias (of image-live)"),
            ("image-live", 400, "is behind alias image"),
            ("image-missing", 400, "does not exist"),
            ("image", 400, "must start with \"image-\""),
            ("image-filtered", 400, "not -filtered"),
            ("image-new-filtered", 400, "not -filtered"),
        ] {
            let (got, body) = answer(post(index)).await;
            assert_eq!(got, status, "{index}: {body}");
            assert!(message(&body).contains("target_index"), "{index}: {body}");
            assert!(message(&body).contains(says), "{index}: {body}");
        }
        let list = answer(http.get(format!("{worker}/task"))).await;
        assert_eq!(list, (200, json!([])), "nothing was started");
        let (got, body) = answer(post("image-new")).await;
        assert_eq!(got, 202, "{body}");
    }

    /// `POST /task` with a `len`-byte body, over a raw connection: the worker answers before
    /// reading the whole body and then closes, so the write may fail; what it answered is read
    /// regardless. Returns the status and the body, which must be JSON.
    async fn post_oversized(worker: &str, len: usize) -> (u16, serde_json::Value) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = worker.trim_start_matches("http://").to_string();
        let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let head = format!(
            "POST /task HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer t0ken\r\n\
             content-type: application/json\r\ncontent-length: {len}\r\n\r\n"
        );
        let sending = tokio::spawn(async move {
            let _ = writer.write_all(head.as_bytes()).await;
            let _ = writer.write_all(&vec![b' '; len]).await;
            writer
        });
        let mut answer = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let (status, headers, body) = loop {
            if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or_else(|| panic!("no content-length in {head:?}"));
                if answer.len() >= end + 4 + length {
                    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
                    break (status, head, answer[end + 4..end + 4 + length].to_vec());
                }
            }
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => panic!(
                    "connection ended before a full answer: {:?}",
                    String::from_utf8_lossy(&answer)
                ),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        };
        sending.abort();
        assert!(
            headers.contains("content-type: application/json"),
            "HTTP {status} is not JSON: {headers}"
        );
        let body = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("HTTP {status}: {e}: {:?}", String::from_utf8_lossy(&body)));
        (status, body)
    }

    #[tokio::test]
    async fn every_rejection_is_a_json_message() {
        // No Elasticsearch: every request here is refused before the worker asks it.
        let worker = serve_worker("http://127.0.0.1:1").await;
        let http = reqwest::Client::new();

        // Over axum's default 2 MB body limit.
        let (status, body) = post_oversized(&worker, 3 << 20).await;
        assert_eq!(status, 413, "{body}");
        assert!(
            message(&body).contains("larger than the worker accepts"),
            "{body}"
        );

        let (status, body) = answer(http.post(format!("{worker}/task")).body("{not json")).await;
        assert_eq!(status, 400, "{body}");
        assert!(message(&body).contains("not a valid task"), "{body}");

        let (status, body) = answer(http.delete(format!("{worker}/task"))).await;
        assert_eq!(status, 405, "{body}");
        assert!(!message(&body).is_empty());

        let (status, body) = answer(http.get(format!("{worker}/nope"))).await;
        assert_eq!(status, 404, "{body}");
        assert!(!message(&body).is_empty());
    }

    /// The JSON extractor's refusals, should a handler use it: each a `{message}` with the
    /// API's statuses (415 without a JSON content type, 400 for bad or ill-shaped JSON, 413
    /// over the limit).
    #[tokio::test]
    async fn json_extractor_rejections_become_api_errors() {
        use axum::extract::FromRequest;
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Shape {
            n: u32,
        }
        let request = |content_type: Option<&str>, body: String| {
            let mut builder = axum::http::Request::builder().method("POST").uri("/task");
            if let Some(ct) = content_type {
                builder = builder.header(header::CONTENT_TYPE, ct);
            }
            builder.body(axum::body::Body::from(body)).unwrap()
        };
        let cases = [
            (request(None, "{}".into()), 415),
            (request(Some("application/json"), "{".into()), 400),
            (
                request(Some("application/json"), r#"{"n": "x"}"#.into()),
                400,
            ),
            (request(Some("application/json"), "1".repeat(3 << 20)), 413),
        ];
        for (request, status) in cases {
            let rejection = Json::<Shape>::from_request(request, &()).await.unwrap_err();
            let response = ApiError::from(rejection).into_response();
            assert_eq!(response.status().as_u16(), status);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(!message(&body).is_empty(), "{status}: {body}");
        }
    }

    #[test]
    fn bearer_token_check() {
        assert!(token_matches(&headers(Some("Bearer s3cret")), "s3cret"));
        assert!(token_matches(&headers(Some("bearer s3cret")), "s3cret"));
        assert!(!token_matches(&headers(Some("Bearer s3cre")), "s3cret"));
        assert!(!token_matches(&headers(Some("Bearer s3cretx")), "s3cret"));
        assert!(!token_matches(&headers(Some("Basic s3cret")), "s3cret"));
        assert!(!token_matches(&headers(Some("s3cret")), "s3cret"));
        assert!(!token_matches(&headers(None), "s3cret"));
    }

    /// The worker's router with a known token, and its state (to see the task registry).
    async fn serve_worker_with_state(es_url: &str, token: &str) -> (String, Arc<AppState>) {
        let state = Arc::new(AppState {
            registry: TaskRegistry::default(),
            services: Services {
                db_url: "postgres://worker@127.0.0.1:1/api".into(),
                es: refresh_core::es::SearchClient::new(es_url).unwrap(),
                catalog_fdw: None,
                sensitive_terms_url: None,
            },
            pipeline: PipelineConfig::default(),
            sql: SqlConfig::default(),
            token: token.into(),
            shutdown: CancellationToken::new(),
            running: TaskTracker::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = router(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, state)
    }

    /// Every request without the exact token is a 401 `{message}` with `WWW-Authenticate`, on
    /// every protected endpoint, and none of them starts a task; the right token then does
    /// (so the refusals were not refusals of the body).
    #[tokio::test]
    async fn requests_without_the_exact_token_are_refused_and_start_nothing() {
        const TOKEN: &str = "Zq8vR2kLmN4pX7sT";
        let (worker, state) = serve_worker_with_state(&fake_es().await, TOKEN).await;
        let http = reqwest::Client::new();
        let same_length_wrong = "Zq8vR2kLmN4pX7sU";
        assert_eq!(same_length_wrong.len(), TOKEN.len());
        let prefix = &TOKEN[..TOKEN.len() - 1];
        let with_suffix = format!("{TOKEN}x");
        let cases: [(&str, Option<String>); 9] = [
            ("no header", None),
            ("empty bearer", Some("Bearer ".into())),
            (
                "wrong token, same length",
                Some(format!("Bearer {same_length_wrong}")),
            ),
            ("wrong token, other length", Some("Bearer short".into())),
            ("prefix of the token", Some(format!("Bearer {prefix}"))),
            ("token plus a suffix", Some(format!("Bearer {with_suffix}"))),
            ("token without scheme", Some(TOKEN.into())),
            ("token with another scheme", Some(format!("Basic {TOKEN}"))),
            (
                "token of another case",
                Some(format!("Bearer {}", TOKEN.to_lowercase())),
            ),
        ];
        for (what, authorization) in &cases {
            let requests = [
                http.post(format!("{worker}/task")).json(&task("image-new")),
                http.get(format!("{worker}/task")),
                http.get(format!("{worker}/task/anything")),
            ];
            for request in requests {
                let request = match authorization {
                    Some(value) => request.header(header::AUTHORIZATION, value),
                    None => request,
                };
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let challenge = response
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .map(|v| v.to_str().unwrap().to_string());
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(status, 401, "{what}: {body}");
                assert_eq!(challenge.as_deref(), Some("Bearer"), "{what}");
                assert_eq!(
                    body,
                    json!({"message": "missing or wrong bearer token"}),
                    "{what}"
                );
                assert!(
                    !body.to_string().contains(TOKEN),
                    "{what}: echoes the token"
                );
            }
            assert!(
                state.registry.all().is_empty(),
                "{what}: a refused request created a task"
            );
        }
        let list = answer_with(http.get(format!("{worker}/task")), TOKEN).await;
        assert_eq!(list, (200, json!([])), "nothing was started");
        let (status, body) = answer_with(
            http.post(format!("{worker}/task")).json(&task("image-new")),
            TOKEN,
        )
        .await;
        assert_eq!(status, 202, "the right token is accepted: {body}");
        assert_eq!(state.registry.all().len(), 1);
    }

    async fn answer_with(
        request: reqwest::RequestBuilder,
        token: &str,
    ) -> (u16, serde_json::Value) {
        let response = request.bearer_auth(token).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// The constant-time property, checked on the code path rather than by timing (a timed
    /// test would be flaky and prove little).
    ///
    /// `token_matches` compares the presented bytes with `subtle::ConstantTimeEq` and nothing
    /// else: no `==`, `starts_with` or other short-circuiting comparison touches the token.
    /// `subtle`'s slice `ct_eq` returns early when the *lengths* differ (documented there:
    /// the length is not treated as secret), and otherwise folds every byte pair into the
    /// result without branching on their values. That early return is acceptable: the token's
    /// length is not secret (it is fixed by how tokens are generated), its content is. What
    /// must hold — and is checked here — is that the result for equal lengths does not depend
    /// on where the first differing byte is, and that different lengths never match.
    #[test]
    fn the_token_is_compared_in_constant_time() {
        let source = include_str!("api.rs");
        let start = source
            .find("pub fn token_matches(")
            .expect("token_matches is in api.rs");
        let end = start
            + source[start..]
                .find("\n}\n")
                .expect("token_matches has a body");
        let body = &source[start..end];
        assert!(
            body.contains(".ct_eq(token.as_bytes())"),
            "token_matches must compare with subtle::ConstantTimeEq:\n{body}"
        );
        for short_circuit in [
            "== token",
            "!= token",
            "token ==",
            "token !=",
            ".eq(token",
            "starts_with(token",
            "ends_with(token",
            "cmp(token",
            "contains(token",
        ] {
            assert!(
                !body.contains(short_circuit),
                "token_matches compares the token with {short_circuit:?}, which stops at the \
                 first differing byte:\n{body}"
            );
        }

        // Equal lengths: the answer is the same wherever the first difference is.
        let token = b"0123456789abcdef";
        for position in 0..token.len() {
            let mut presented = *token;
            presented[position] ^= 0x01;
            assert!(!bool::from(presented.as_slice().ct_eq(token.as_slice())));
        }
        assert!(bool::from(token.as_slice().ct_eq(token.as_slice())));
        // Other lengths (prefix, suffix, empty) never match; subtle returns early on them,
        // which reveals only the length.
        assert!(!bool::from(token[..15].ct_eq(token.as_slice())));
        assert!(!bool::from(
            b"0123456789abcdefX".as_slice().ct_eq(token.as_slice())
        ));
        assert!(!bool::from(b"".as_slice().ct_eq(token.as_slice())));
    }
}
