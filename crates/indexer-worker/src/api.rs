//! The HTTP API (docs/ARCHITECTURE.md, "Indexer worker HTTP API").

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bulk::RequestError as EsError;
use crate::pipeline::{run_task, PipelineConfig, Services};
use crate::request::parse_task_request;
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

fn message(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(json!({ "message": text.into() }))).into_response()
}

async fn healthcheck() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "no such endpoint")
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
) -> Response {
    if token_matches(request.headers(), &state.token) {
        return next.run(request).await;
    }
    let mut response = message(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

async fn list_tasks(State(state): State<Arc<AppState>>) -> Response {
    let statuses: Vec<_> = state.registry.all().iter().map(|t| t.status()).collect();
    Json(statuses).into_response()
}

async fn task_status(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match state.registry.get(&id) {
        Some(task) => Json(task.status()).into_response(),
        None => message(
            StatusCode::NOT_FOUND,
            format!("No task found with id {id}."),
        ),
    }
}

async fn start_task(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The body is parsed by hand so every malformed request is a 400 with a message
    // (axum's `Json` would answer 415/422 for some of them).
    let spec = match parse_task_request(&body) {
        Ok(spec) => spec,
        Err(e) => return message(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if state.shutdown.is_cancelled() {
        return message(StatusCode::SERVICE_UNAVAILABLE, "worker is shutting down");
    }
    match state.services.es.index_exists(&spec.target_index).await {
        Ok(true) => {}
        Ok(false) => {
            return message(
                StatusCode::BAD_REQUEST,
                format!(
                    "target_index {:?} does not exist: create it before reindexing into it",
                    spec.target_index
                ),
            )
        }
        Err(EsError::Retryable(e) | EsError::Fatal(e)) => {
            return message(StatusCode::SERVICE_UNAVAILABLE, e)
        }
    }
    let (task, created) = match state.registry.start(spec) {
        Started::New(task) => (task, true),
        Started::Existing(task) => (task, false),
        Started::Busy(other) => {
            return message(
                StatusCode::CONFLICT,
                format!(
                    "task {} ({}..={}) is still running; one range at a time",
                    other.id, other.spec.start_id, other.spec.end_id
                ),
            )
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
    (StatusCode::ACCEPTED, Json(body)).into_response()
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
