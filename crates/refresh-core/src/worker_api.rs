//! The indexer worker's HTTP contract (docs/ARCHITECTURE.md, "Indexer worker HTTP API"),
//! shared by the worker that serves it and the Lambda steps that call it, so the two
//! sides cannot drift apart.

use serde::{Deserialize, Serialize};

/// `POST /task` body. Unknown extra fields are ignored, for today's callers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRequest {
    pub model_name: String,
    pub table_name: String,
    pub target_index: String,
    pub start_id: i64,
    pub end_id: i64,
}

/// `GET /task/{id}` answer (and one item of `GET /task`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub task_id: String,
    pub active: bool,
    pub model: String,
    pub target_index: String,
    pub table_name: String,
    pub start_id: i64,
    pub end_id: i64,
    /// 0–100 by rows processed; 100 only for a task that succeeded.
    pub progress: f64,
    pub rows_total: u64,
    pub rows_processed: u64,
    pub indexed: u64,
    pub skipped: u64,
    pub failed: u64,
    pub rows_per_second: f64,
    pub start_time: String,
    pub finish_time: Option<String>,
    pub error: Option<String>,
    #[serde(default)]
    pub first_errors: Vec<String>,
}
