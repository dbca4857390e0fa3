//! In-memory registry of the worker's tasks (reindex ranges and SQL jobs, one running at a
//! time) and the status JSON the API returns.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use refresh_core::media::MediaType;
use refresh_core::worker_api::{AnyTaskStatus, TaskKind};
use tokio_util::sync::CancellationToken;

use crate::sql_task::{SqlSpec, SqlTask};

/// How many item errors a status keeps (the counts cover all of them).
pub const MAX_FIRST_ERRORS: usize = 10;

/// A validated reindex request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    pub media: MediaType,
    pub target_index: String,
    /// Dual write: `<target_index>-filtered`, which gets the documents without a sensitive term.
    pub filtered_index: Option<String>,
    pub start_id: i64,
    pub end_id: i64,
}

/// Counters the pipeline updates while it runs; read lock-free by status requests.
#[derive(Debug, Default)]
pub struct Counters {
    pub rows_total: AtomicU64,
    pub indexed: AtomicU64,
    pub skipped: AtomicU64,
    pub failed: AtomicU64,
    /// Dual write: documents written to the filtered index, failed there, left out of it.
    pub filtered_indexed: AtomicU64,
    pub filtered_failed: AtomicU64,
    pub sensitive: AtomicU64,
}

impl Counters {
    pub fn add_indexed(&self, n: u64) {
        self.indexed.fetch_add(n, Ordering::Relaxed);
    }
    pub fn add_skipped(&self, n: u64) {
        self.skipped.fetch_add(n, Ordering::Relaxed);
    }
    pub fn add_failed(&self, n: u64) {
        self.failed.fetch_add(n, Ordering::Relaxed);
    }
    pub fn add_filtered_indexed(&self, n: u64) {
        self.filtered_indexed.fetch_add(n, Ordering::Relaxed);
    }
    pub fn add_filtered_failed(&self, n: u64) {
        self.filtered_failed.fetch_add(n, Ordering::Relaxed);
    }
    pub fn add_sensitive(&self, n: u64) {
        self.sensitive.fetch_add(n, Ordering::Relaxed);
    }
    pub fn rows_processed(&self) -> u64 {
        self.indexed.load(Ordering::Relaxed)
            + self.skipped.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
struct Outcome {
    finished: Option<(DateTime<Utc>, Instant)>,
    error: Option<String>,
    first_errors: Vec<String>,
}

#[derive(Debug)]
pub struct Task {
    pub id: String,
    pub spec: TaskSpec,
    pub counters: Counters,
    /// Fires on `DELETE /task/{id}` and on shutdown (a child of the registry's token).
    pub cancel: CancellationToken,
    cancel_requested: AtomicBool,
    start_time: DateTime<Utc>,
    started: Instant,
    outcome: Mutex<Outcome>,
}

impl Task {
    fn new(spec: TaskSpec, cancel: CancellationToken) -> Self {
        Task {
            id: new_task_id(),
            spec,
            counters: Counters::default(),
            cancel,
            cancel_requested: AtomicBool::new(false),
            start_time: Utc::now(),
            started: Instant::now(),
            outcome: Mutex::new(Outcome::default()),
        }
    }

    /// Whether `DELETE /task/{id}` stopped it (rather than a shutdown).
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested.load(Ordering::Relaxed)
    }

    fn outcome(&self) -> MutexGuard<'_, Outcome> {
        // A panic while holding this lock cannot leave the outcome half-written in a way
        // that matters more than losing the status, so recover the guard.
        self.outcome
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn is_active(&self) -> bool {
        self.outcome().finished.is_none()
    }

    /// Keeps the first few item errors for the status; the failed counter counts all.
    pub fn record_error(&self, message: String) {
        let mut outcome = self.outcome();
        if outcome.first_errors.len() < MAX_FIRST_ERRORS {
            outcome.first_errors.push(message);
        }
    }

    /// Marks the task finished; `error` is `None` only when every row was indexed or skipped.
    pub fn finish(&self, error: Option<String>) {
        let mut outcome = self.outcome();
        if outcome.finished.is_none() {
            outcome.finished = Some((Utc::now(), Instant::now()));
            outcome.error = error;
        }
    }

    pub fn status(&self) -> TaskStatus {
        let outcome = self.outcome();
        let rows_total = self.counters.rows_total.load(Ordering::Relaxed);
        let indexed = self.counters.indexed.load(Ordering::Relaxed);
        let skipped = self.counters.skipped.load(Ordering::Relaxed);
        let failed = self.counters.failed.load(Ordering::Relaxed);
        let rows_processed = indexed + skipped + failed;
        let end = outcome
            .finished
            .map(|(_, at)| at)
            .unwrap_or_else(Instant::now);
        let elapsed = end.duration_since(self.started).as_secs_f64();
        TaskStatus {
            task_id: self.id.clone(),
            kind: TaskKind::Reindex,
            active: outcome.finished.is_none(),
            model: self.spec.media.as_str().to_string(),
            target_index: self.spec.target_index.clone(),
            table_name: self.spec.media.temp_table().to_string(),
            start_id: self.spec.start_id,
            end_id: self.spec.end_id,
            progress: progress_percent(
                rows_processed,
                rows_total,
                outcome.finished.is_some() && outcome.error.is_none(),
            ),
            rows_total,
            rows_processed,
            indexed,
            skipped,
            failed,
            filtered_index: self.spec.filtered_index.clone(),
            filtered_indexed: self.counters.filtered_indexed.load(Ordering::Relaxed),
            filtered_failed: self.counters.filtered_failed.load(Ordering::Relaxed),
            sensitive: self.counters.sensitive.load(Ordering::Relaxed),
            rows_per_second: if elapsed > 0.0 {
                (rows_processed as f64 / elapsed * 10.0).round() / 10.0
            } else {
                0.0
            },
            start_time: self.start_time.to_rfc3339_opts(SecondsFormat::Millis, true),
            finish_time: outcome
                .finished
                .map(|(at, _)| at.to_rfc3339_opts(SecondsFormat::Millis, true)),
            error: outcome.error.clone(),
            first_errors: outcome.first_errors.clone(),
        }
    }
}

/// Progress in percent (0–100, one decimal) of rows settled (indexed, skipped or failed).
/// Only a task that succeeded reports 100: a failed one stays below even when every row
/// was settled, so no caller can mistake it for a complete index.
pub fn progress_percent(rows_processed: u64, rows_total: u64, succeeded: bool) -> f64 {
    if succeeded {
        return 100.0;
    }
    if rows_total == 0 {
        return 0.0;
    }
    let pct = (rows_processed as f64 / rows_total as f64 * 1000.0).floor() / 10.0;
    pct.min(99.9)
}

pub use refresh_core::worker_api::TaskStatus;

pub(crate) fn new_task_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Any task the registry holds.
#[derive(Debug, Clone)]
pub enum Entry {
    Reindex(Arc<Task>),
    Sql(Arc<SqlTask>),
}

impl Entry {
    pub fn id(&self) -> &str {
        match self {
            Entry::Reindex(t) => &t.id,
            Entry::Sql(t) => &t.id,
        }
    }

    pub fn is_active(&self) -> bool {
        match self {
            Entry::Reindex(t) => t.is_active(),
            Entry::Sql(t) => t.is_active(),
        }
    }

    /// Records the end of the task (first outcome wins).
    pub fn finish(&self, error: Option<String>) {
        match self {
            Entry::Reindex(t) => t.finish(error),
            Entry::Sql(t) => t.finish(None, error),
        }
    }

    pub fn status(&self) -> AnyTaskStatus {
        match self {
            Entry::Reindex(t) => AnyTaskStatus::Reindex(t.status()),
            Entry::Sql(t) => AnyTaskStatus::Sql(t.status()),
        }
    }

    /// Stops the task: a reindex stops sending, a SQL job cancels its running statements on
    /// the server. No-op for a finished task.
    pub fn cancel(&self) {
        match self {
            Entry::Reindex(t) => {
                t.cancel_requested.store(true, Ordering::Relaxed);
                t.cancel.cancel();
            }
            Entry::Sql(t) => t.request_cancel(),
        }
    }

    /// What the task works on, for a 409 answer.
    pub fn describe(&self) -> String {
        match self {
            Entry::Reindex(t) => format!("{}..={}", t.spec.start_id, t.spec.end_id),
            Entry::Sql(t) => format!("sql {} of {}", t.spec.job, t.spec.media),
        }
    }
}

/// All tasks of this worker, oldest first, and when the worker was last busy.
#[derive(Debug)]
pub struct TaskRegistry {
    inner: Mutex<RegistryInner>,
    /// Every task's cancellation token is a child of this one (the worker's shutdown).
    root: CancellationToken,
}

#[derive(Debug)]
struct RegistryInner {
    tasks: Vec<Entry>,
    last_activity: Instant,
}

impl Default for TaskRegistry {
    fn default() -> Self {
        TaskRegistry::new(CancellationToken::new())
    }
}

/// What `TaskRegistry::start` decided.
pub enum Started<T> {
    New(Arc<T>),
    /// The same task is already running (a caller retried its POST): reuse it.
    Existing(Arc<T>),
    /// Another task is running; one worker runs one task at a time so memory stays bounded
    /// (and the database gets one job's sessions at a time).
    Busy(Entry),
}

impl TaskRegistry {
    /// A registry whose tasks are cancelled when `shutdown` is.
    pub fn new(shutdown: CancellationToken) -> Self {
        TaskRegistry {
            inner: Mutex::new(RegistryInner {
                tasks: Vec::new(),
                last_activity: Instant::now(),
            }),
            root: shutdown,
        }
    }

    fn inner(&self) -> MutexGuard<'_, RegistryInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a reindex unless a task is running.
    pub fn start(&self, spec: TaskSpec) -> Started<Task> {
        let mut inner = self.inner();
        inner.last_activity = Instant::now();
        if let Some(active) = inner.tasks.iter().find(|t| t.is_active()) {
            return match active {
                Entry::Reindex(task) if task.spec == spec => Started::Existing(task.clone()),
                other => Started::Busy(other.clone()),
            };
        }
        let task = Arc::new(Task::new(spec, self.root.child_token()));
        inner.tasks.push(Entry::Reindex(task.clone()));
        Started::New(task)
    }

    /// Starts a SQL job unless a task is running.
    pub fn start_sql(&self, spec: SqlSpec) -> Started<SqlTask> {
        let mut inner = self.inner();
        inner.last_activity = Instant::now();
        if let Some(active) = inner.tasks.iter().find(|t| t.is_active()) {
            return match active {
                Entry::Sql(task) if task.spec == spec => Started::Existing(task.clone()),
                other => Started::Busy(other.clone()),
            };
        }
        let task = Arc::new(SqlTask::new(spec, self.root.child_token()));
        inner.tasks.push(Entry::Sql(task.clone()));
        Started::New(task)
    }

    pub fn get(&self, id: &str) -> Option<Entry> {
        self.inner().tasks.iter().find(|t| t.id() == id).cloned()
    }

    pub fn all(&self) -> Vec<Entry> {
        self.inner().tasks.clone()
    }

    pub fn any_active(&self) -> bool {
        self.inner().tasks.iter().any(|t| t.is_active())
    }

    /// Called when a task ends, so idle time counts from then.
    pub fn touch(&self) {
        self.inner().last_activity = Instant::now();
    }

    /// How long the worker has had no running task (zero while one runs).
    pub fn idle_for(&self) -> std::time::Duration {
        let inner = self.inner();
        if inner.tasks.iter().any(|t| t.is_active()) {
            std::time::Duration::ZERO
        } else {
            inner.last_activity.elapsed()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(start_id: i64) -> TaskSpec {
        TaskSpec {
            media: MediaType::Image,
            target_index: "image-x".into(),
            filtered_index: None,
            start_id,
            end_id: start_id + 10,
        }
    }

    #[test]
    fn only_success_reports_100() {
        assert_eq!(progress_percent(10, 10, true), 100.0);
        assert_eq!(progress_percent(10, 10, false), 99.9);
        assert_eq!(progress_percent(0, 0, false), 0.0);
        assert_eq!(progress_percent(0, 0, true), 100.0);
        assert_eq!(progress_percent(1, 3, false), 33.3);
    }

    proptest! {
        #[test]
        fn progress_is_bounded_and_monotonic(total in 1u64..10_000_000, a in 0u64..10_000_000, b in 0u64..10_000_000) {
            let (lo, hi) = if a <= b { (a.min(total), b.min(total)) } else { (b.min(total), a.min(total)) };
            let p_lo = progress_percent(lo, total, false);
            let p_hi = progress_percent(hi, total, false);
            prop_assert!((0.0..100.0).contains(&p_lo));
            prop_assert!(p_lo <= p_hi);
        }
    }

    #[test]
    fn one_range_at_a_time_and_retried_post_reuses_task() {
        let reg = TaskRegistry::default();
        let Started::New(first) = reg.start(spec(1)) else {
            panic!("first start must create a task")
        };
        assert!(matches!(reg.start(spec(1)), Started::Existing(t) if t.id == first.id));
        assert!(matches!(reg.start(spec(100)), Started::Busy(t) if t.id() == first.id));
        first.finish(None);
        assert!(matches!(reg.start(spec(100)), Started::New(t) if t.id != first.id));
        assert_eq!(reg.all().len(), 2);
        assert_eq!(
            reg.get(&first.id).map(|t| t.id().to_string()),
            Some(first.id.clone())
        );
        assert!(reg.get("nope").is_none());
    }

    #[test]
    fn status_reports_counts_and_keeps_first_errors_only() {
        let reg = TaskRegistry::default();
        let Started::New(task) = reg.start(spec(1)) else {
            panic!()
        };
        task.counters.rows_total.store(10, Ordering::Relaxed);
        task.counters.add_indexed(6);
        task.counters.add_skipped(2);
        task.counters.add_failed(2);
        for i in 0..(MAX_FIRST_ERRORS + 5) {
            task.record_error(format!("e{i}"));
        }
        let running = task.status();
        assert!(running.active);
        assert_eq!(running.finish_time, None);
        task.finish(Some("2 documents could not be indexed".into()));
        task.finish(None); // first outcome wins
        let s = task.status();
        assert!(!s.active);
        assert_eq!(
            (s.rows_processed, s.indexed, s.skipped, s.failed),
            (10, 6, 2, 2)
        );
        assert_eq!(s.progress, 99.9);
        assert_eq!(s.error.as_deref(), Some("2 documents could not be indexed"));
        assert_eq!(s.first_errors.len(), MAX_FIRST_ERRORS);
        assert!(s.finish_time.is_some());
        assert_eq!(s.table_name, "temp_import_image");
        assert_eq!(task.id.len(), 32);
    }
}
