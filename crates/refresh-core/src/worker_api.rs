//! The indexer worker's HTTP contract (docs/ARCHITECTURE.md, "Indexer worker HTTP API"),
//! shared by the worker that serves it and the Lambda steps that call it, so the two
//! sides cannot drift apart.
//!
//! Two kinds of task: a reindex of one id range (the original body, `kind` absent or
//! `"reindex"`) and a long SQL job (`kind: "sql"`), which runs the statements that can
//! outlive a Lambda (index and constraint builds, `ANALYZE`, foreign-key validation, the temp
//! table's primary key, the audioset copy) on the worker's own database sessions.

use serde::{Deserialize, Serialize};
use std::fmt;

/// `POST /task` body of a reindex. Unknown extra fields are ignored, for today's callers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRequest {
    pub model_name: String,
    pub table_name: String,
    pub target_index: String,
    pub start_id: i64,
    pub end_id: i64,
    /// Dual write: `<target_index>-filtered`, which gets every document of the range without a
    /// sensitive term, in the same pass. Absent: the main index only (a filtered `_reindex`
    /// builds the other later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filtered_index: Option<String>,
}

/// Which kind of task a body or status describes (`kind`; absent = reindex).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    #[default]
    Reindex,
    Sql,
}

/// The long SQL jobs a worker runs (`job` of a SQL task).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlJob {
    /// End of step 2: the temp table's primary key and, for audio, `audioset` from the catalog.
    FinishCopy,
    /// Step 8: the live table's indexes (in parallel), constraints and `ANALYZE` on the temp table.
    Reapply,
    /// After step 9: delete orphans and `VALIDATE` the referencing foreign keys promotion
    /// re-created `NOT VALID`.
    ValidateForeignKeys,
}

impl SqlJob {
    pub const ALL: [SqlJob; 3] = [
        SqlJob::FinishCopy,
        SqlJob::Reapply,
        SqlJob::ValidateForeignKeys,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SqlJob::FinishCopy => "finish_copy",
            SqlJob::Reapply => "reapply",
            SqlJob::ValidateForeignKeys => "validate_foreign_keys",
        }
    }
}

impl fmt::Display for SqlJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Index builds a SQL task may run at once (`parallelism`): each is a backend of the API
/// database with its own `maintenance_work_mem`, so the bound protects the database.
pub const MAX_SQL_PARALLELISM: u32 = 16;

/// `POST /task` body of a SQL task. Parsed strictly: an unknown key is refused by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlTaskRequest {
    /// Always [`TaskKind::Sql`].
    pub kind: TaskKind,
    pub job: SqlJob,
    /// `image` or `audio`: the job works on that media's live and temp tables.
    pub media_type: String,
    /// Index builds at once (1..=[`MAX_SQL_PARALLELISM`]); the worker's default when absent.
    /// Only `reapply` builds indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
}

impl SqlTaskRequest {
    pub fn new(job: SqlJob, media_type: &str, parallelism: Option<u32>) -> Self {
        SqlTaskRequest {
            kind: TaskKind::Sql,
            job,
            media_type: media_type.to_string(),
            parallelism,
        }
    }
}

/// `GET /task/{id}` answer for a reindex (and one item of `GET /task`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub task_id: String,
    /// Always [`TaskKind::Reindex`]; absent in answers of workers older than the SQL tasks.
    #[serde(default)]
    pub kind: TaskKind,
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
    /// Dual write only (absent otherwise, and from older workers): the filtered index, the
    /// documents written to it, those that could not be, and those left out as sensitive.
    /// When the task succeeded, `filtered_indexed + sensitive == indexed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filtered_index: Option<String>,
    #[serde(default)]
    pub filtered_indexed: u64,
    #[serde(default)]
    pub filtered_failed: u64,
    #[serde(default)]
    pub sensitive: u64,
    pub rows_per_second: f64,
    pub start_time: String,
    pub finish_time: Option<String>,
    pub error: Option<String>,
    #[serde(default)]
    pub first_errors: Vec<String>,
}

/// One statement a SQL task is running now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningStatement {
    /// What it does, e.g. `building image_provider_idx_tmp on temp_import_image`.
    pub what: String,
    /// The SQL (generated DDL: names from the catalog, no values; shortened).
    pub statement: String,
    pub seconds: f64,
}

/// `GET /task/{id}` answer for a SQL task (and one item of `GET /task`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SqlTaskStatus {
    pub task_id: String,
    /// Always [`TaskKind::Sql`].
    pub kind: TaskKind,
    pub active: bool,
    pub job: SqlJob,
    pub media_type: String,
    /// The table the job works on (the temp table; the live one for `validate_foreign_keys`).
    pub table_name: String,
    pub parallelism: u32,
    /// Statements the job has planned so far (it plans in stages, so this can grow).
    pub statements_total: u64,
    pub statements_done: u64,
    pub statements_failed: u64,
    pub running: Vec<RunningStatement>,
    /// Set while the job waits for something outside it (e.g. another session's index build).
    pub waiting: Option<String>,
    pub elapsed_seconds: f64,
    pub start_time: String,
    pub finish_time: Option<String>,
    /// Why the job failed or was cancelled: the PostgreSQL error through
    /// `refresh_core::pg::error` (never a connection string).
    pub error: Option<String>,
    /// The job's report once it ended (`ReapplyReport`, `FinishCopyReport`,
    /// `ForeignKeyValidationReport`); for a failed validation, with each constraint's outcome.
    pub result: Option<serde_json::Value>,
}

/// Either kind of status, told apart by `kind` (absent = reindex, as older workers answer).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AnyTaskStatus {
    Reindex(TaskStatus),
    Sql(SqlTaskStatus),
}

impl AnyTaskStatus {
    /// Parses a worker's status answer by its `kind`.
    pub fn from_value(value: serde_json::Value) -> Result<AnyTaskStatus, serde_json::Error> {
        let kind = value
            .get("kind")
            .cloned()
            .map(serde_json::from_value::<TaskKind>)
            .transpose()?
            .unwrap_or_default();
        Ok(match kind {
            TaskKind::Reindex => AnyTaskStatus::Reindex(serde_json::from_value(value)?),
            TaskKind::Sql => AnyTaskStatus::Sql(serde_json::from_value(value)?),
        })
    }

    pub fn task_id(&self) -> &str {
        match self {
            AnyTaskStatus::Reindex(s) => &s.task_id,
            AnyTaskStatus::Sql(s) => &s.task_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_are_told_apart_by_kind() {
        let reindex = json!({
            "task_id": "a", "active": true, "model": "image", "target_index": "image-x",
            "table_name": "temp_import_image", "start_id": 1, "end_id": 2, "progress": 0.0,
            "rows_total": 2, "rows_processed": 0, "indexed": 0, "skipped": 0, "failed": 0,
            "rows_per_second": 0.0, "start_time": "t", "finish_time": null, "error": null
        });
        let parsed = AnyTaskStatus::from_value(reindex.clone()).unwrap();
        assert!(matches!(&parsed, AnyTaskStatus::Reindex(s) if s.kind == TaskKind::Reindex));
        let mut with_kind = reindex;
        with_kind["kind"] = json!("reindex");
        assert!(matches!(
            AnyTaskStatus::from_value(with_kind).unwrap(),
            AnyTaskStatus::Reindex(_)
        ));
        let sql = json!({
            "task_id": "b", "kind": "sql", "active": false, "job": "reapply",
            "media_type": "image", "table_name": "temp_import_image", "parallelism": 4,
            "statements_total": 3, "statements_done": 3, "statements_failed": 0, "running": [],
            "waiting": null, "elapsed_seconds": 1.5, "start_time": "t", "finish_time": "u",
            "error": null, "result": {"done": true}
        });
        let parsed = AnyTaskStatus::from_value(sql.clone()).unwrap();
        assert!(matches!(&parsed, AnyTaskStatus::Sql(s) if s.job == SqlJob::Reapply));
        assert_eq!(parsed.task_id(), "b");
        assert_eq!(serde_json::to_value(&parsed).unwrap(), sql);
        assert!(AnyTaskStatus::from_value(json!({"kind": "video"})).is_err());
    }

    #[test]
    fn sql_requests_serialise_with_their_kind() {
        let request = SqlTaskRequest::new(SqlJob::ValidateForeignKeys, "audio", None);
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"kind": "sql", "job": "validate_foreign_keys", "media_type": "audio"})
        );
        for job in SqlJob::ALL {
            assert_eq!(serde_json::to_value(job).unwrap(), json!(job.as_str()));
        }
    }
}
