//! The HTTP API (docs/ARCHITECTURE.md, "Indexer worker HTTP API").

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use refresh_core::es::bulk::index_exists;
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::pipeline::{run_task, PipelineConfig, Services};
use crate::request::{parse_task_request, RequestError};
use crate::tasks::{Started, TaskRegistry};

/// Everything the handlers share.
pub struct AppState {
    pub registry: TaskRegistry,
    pub services: Services,
    pub pipeline: PipelineConfig,
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
        .route("/task/{id}", get(task_status))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthcheck", get(healthcheck))
        .merge(protected)
        .fallback(not_found)
        .with_state(state)
}

/// Every refusal the API answers, as `{"message": …}` with its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not a valid task.
    #[error(transparent)]
    BadRequest(#[from] RequestError),
    /// 400: reindexing into a missing index would create it with dynamic mappings.
    #[error("target_index {0:?} does not exist: create it before reindexing into it")]
    MissingIndex(String),
    /// 401, with `WWW-Authenticate: Bearer`.
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// 404: an unknown task id.
    #[error("No task found with id {0}.")]
    TaskNotFound(String),
    /// 404: an unknown path.
    #[error("no such endpoint")]
    NoSuchEndpoint,
    /// 409: one range at a time.
    #[error("task {id} ({start_id}..={end_id}) is still running; one range at a time")]
    Busy {
        id: String,
        start_id: i64,
        end_id: i64,
    },
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
            ApiError::BadRequest(_) | ApiError::MissingIndex(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::TaskNotFound(_) | ApiError::NoSuchEndpoint => StatusCode::NOT_FOUND,
            ApiError::Busy { .. } => StatusCode::CONFLICT,
            ApiError::ShuttingDown | ApiError::SearchUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
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
    let statuses: Vec<_> = state.registry.all().iter().map(|t| t.status()).collect();
    Json(statuses).into_response()
}

async fn task_status(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state.registry.get(&id) {
        Some(task) => Ok(Json(task.status()).into_response()),
        None => Err(ApiError::TaskNotFound(id)),
    }
}

async fn start_task(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // The body is parsed by hand so every malformed request is a 400 with a message
    // (axum's `Json` would answer 415/422 for some of them).
    let spec = parse_task_request(&body)?;
    if state.shutdown.is_cancelled() {
        return Err(ApiError::ShuttingDown);
    }
    let exists = index_exists(&state.services.es, &spec.target_index)
        .await
        .map_err(|e| ApiError::SearchUnavailable(e.message))?;
    if !exists {
        return Err(ApiError::MissingIndex(spec.target_index));
    }
    let (task, created) = match state.registry.start(spec) {
        Started::New(task) => (task, true),
        Started::Existing(task) => (task, false),
        Started::Busy(other) => {
            return Err(ApiError::Busy {
                id: other.id.clone(),
                start_id: other.spec.start_id,
                end_id: other.spec.end_id,
            })
        }
    };
    if created {
        let (services, pipeline, shutdown) = (
            state.services.clone(),
            state.pipeline.clone(),
            state.shutdown.clone(),
        );
        let registry_state = state.clone();
        let task_for_run = task.clone();
        state.running.spawn(async move {
            run_task(services, pipeline, task_for_run, shutdown).await;
            registry_state.registry.touch();
        });
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let body = json!({
        "message": if created { "Successfully scheduled task." } else { "Task for this range is already running." },
        "task_id": task.id,
        "status_check": format!("http://{host}/task/{}", task.id),
    });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
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
                ApiError::MissingIndex("image-x".into()),
                400,
                "target_index \"image-x\" does not exist: create it before reindexing into it",
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
                    start_id: 1,
                    end_id: 9,
                },
                409,
                "task t1 (1..=9) is still running; one range at a time",
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
}
