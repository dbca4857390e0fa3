//! One reindex task: read → convert → send, overlapped so Elasticsearch never waits.
//!
//! - reader: keyset pages of `page_rows` rows (`refresh_core::document::select_sql`) into a
//!   channel of two pages;
//! - converter: each row → `SourceRow` → `Document` → NDJSON pair, cut into batches by
//!   document count and bytes, into a channel as deep as the number of senders;
//! - senders: `in_flight` bulk requests at once, each with its own retries.
//!
//! Memory is bounded by (2 pages + 1 page being converted) + (in_flight + queue + 1
//! being built) batches, whatever the size of the range.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use refresh_core::document::{select_sql, to_document, write_bulk_action, SourceRow};
use refresh_core::media::MediaType;
use tokio::sync::mpsc;
use tokio_postgres::{NoTls, Row};
use tokio_util::sync::CancellationToken;

use crate::bulk::{index_batch, Batch, BatchBuilder, BulkConfig, EsClient};
use crate::tasks::Task;

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub page_rows: u32,
    pub bulk: BulkConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            page_rows: 5_000,
            bulk: BulkConfig::default(),
        }
    }
}

/// Where a task reads and writes. `db_url` is a secret: never log or echo it.
#[derive(Clone)]
pub struct Services {
    pub db_url: String,
    pub es: EsClient,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Services {{ db: <redacted>, es: {:?} }}", self.es)
    }
}

/// `host:port/dbname` of a connection URL, for messages (no user, no password).
pub fn describe_db(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) => {
            let host = match config.get_hosts().first() {
                Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
                #[cfg(unix)]
                Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
                None => "localhost".into(),
            };
            let port = config.get_ports().first().copied().unwrap_or(5432);
            format!("{host}:{port}/{}", config.get_dbname().unwrap_or(""))
        }
        Err(_) => "<unparsable database URL>".into(),
    }
}

/// Why a task stopped before settling every row.
#[derive(Debug, Clone)]
enum Stop {
    Shutdown,
    Failed(String),
}

/// Runs the task to its end and records the outcome on it. Never panics on bad data:
/// every failure becomes the task's `error`.
pub async fn run_task(
    services: Services,
    config: PipelineConfig,
    task: Arc<Task>,
    shutdown: CancellationToken,
) {
    let outcome = run(&services, &config, &task, &shutdown).await;
    let status_counts = |t: &Task| {
        let s = t.status();
        format!(
            "{} of {} rows processed (indexed {}, skipped {}, failed {})",
            s.rows_processed, s.rows_total, s.indexed, s.skipped, s.failed
        )
    };
    let error = match outcome {
        Err(Stop::Shutdown) => Some(format!(
            "worker shut down before the range was finished: {}",
            status_counts(&task)
        )),
        Err(Stop::Failed(message)) => {
            Some(format!("{message}; stopped with {}", status_counts(&task)))
        }
        Ok(()) => {
            let failed = task
                .counters
                .failed
                .load(std::sync::atomic::Ordering::Relaxed);
            (failed > 0).then(|| {
                format!(
                    "{failed} document(s) could not be indexed: {}",
                    status_counts(&task)
                )
            })
        }
    };
    task.finish(error);
    let status = task.status();
    match &status.error {
        None => {
            tracing::info!(task_id = %task.id, indexed = status.indexed, skipped = status.skipped,
            rows_per_second = status.rows_per_second, "task finished")
        }
        Some(error) => {
            tracing::error!(task_id = %task.id, indexed = status.indexed, skipped = status.skipped,
            failed = status.failed, %error, "task failed")
        }
    }
}

async fn run(
    services: &Services,
    config: &PipelineConfig,
    task: &Arc<Task>,
    shutdown: &CancellationToken,
) -> Result<(), Stop> {
    let spec = &task.spec;
    let media = spec.media;
    let db = describe_db(&services.db_url);
    let (client, connection) = tokio_postgres::connect(&services.db_url, NoTls)
        .await
        .map_err(|e| Stop::Failed(format!("cannot connect to the API database {db}: {e}")))?;
    let connection = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %e, "database connection closed");
        }
    });
    let client = Arc::new(client);

    let count_sql = format!(
        "SELECT count(*) FROM \"{}\" WHERE id BETWEEN $1::bigint AND $2::bigint",
        media.temp_table()
    );
    let rows_total: i64 = client
        .query_one(&count_sql, &[&spec.start_id, &spec.end_id])
        .await
        .map_err(|e| {
            Stop::Failed(format!(
                "counting rows of {} in {db} failed: {e}",
                media.temp_table()
            ))
        })?
        .get(0);
    task.counters.rows_total.store(
        rows_total.max(0) as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    tracing::info!(task_id = %task.id, table = media.temp_table(), index = %spec.target_index,
        start_id = spec.start_id, end_id = spec.end_id, rows_total, "task started");

    // Cancelled by shutdown, or by any stage that fails, so the others stop too.
    let abort = shutdown.child_token();
    let first_failure: Arc<Mutex<Option<String>>> = Arc::default();
    let fail = {
        let first_failure = first_failure.clone();
        let abort = abort.clone();
        move |message: String| {
            let mut slot = first_failure.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(message);
            abort.cancel();
        }
    };

    let (page_tx, page_rx) = mpsc::channel::<Vec<Row>>(2);
    let (batch_tx, batch_rx) = mpsc::channel::<Batch>(config.bulk.in_flight);

    let reader = read_pages(
        client.clone(),
        media,
        spec.start_id,
        spec.end_id,
        config.page_rows,
        page_tx,
        abort.clone(),
    );
    let converter = convert_pages(
        media,
        task.clone(),
        page_rx,
        batch_tx,
        config.bulk.clone(),
        abort.clone(),
    );
    let senders = send_batches(
        services.es.clone(),
        config.bulk.clone(),
        task.clone(),
        batch_rx,
        abort.clone(),
        fail.clone(),
    );

    let (read, convert, ()) = tokio::join!(reader, converter, senders);
    if let Err(message) = read.and(convert) {
        fail(message);
    }
    drop(client);
    let _ = connection.await;

    let failure = first_failure
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    // A shutdown also makes retrying batches fail: report the cause, not the symptom.
    match failure {
        _ if shutdown.is_cancelled() => Err(Stop::Shutdown),
        Some(message) => Err(Stop::Failed(message)),
        None => Ok(()),
    }
}

async fn read_pages(
    client: Arc<tokio_postgres::Client>,
    media: MediaType,
    start_id: i64,
    end_id: i64,
    page_rows: u32,
    pages: mpsc::Sender<Vec<Row>>,
    abort: CancellationToken,
) -> Result<(), String> {
    let table = media.temp_table();
    let statement = client
        .prepare(&select_sql(media))
        .await
        .map_err(|e| format!("reading {table} failed: {e}"))?;
    let limit = i64::from(page_rows);
    // Exclusive cursor; saturating so start_id = i64::MIN cannot overflow.
    let mut cursor = start_id.saturating_sub(1);
    while cursor < end_id && !abort.is_cancelled() {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&cursor, &end_id, &limit];
        let rows = tokio::select! {
            rows = client.query(&statement, &params) => rows.map_err(|e| format!("reading {table} after id {cursor} failed: {e}"))?,
            _ = abort.cancelled() => break,
        };
        let Some(last) = rows.last() else { break };
        let last_id: i64 = last
            .try_get("id")
            .map_err(|e| format!("reading {table}: bad id column: {e}"))?;
        let full = rows.len() as i64 == limit;
        cursor = last_id;
        if pages.send(rows).await.is_err() || !full {
            break;
        }
    }
    Ok(())
}

async fn convert_pages(
    media: MediaType,
    task: Arc<Task>,
    mut pages: mpsc::Receiver<Vec<Row>>,
    batches: mpsc::Sender<Batch>,
    config: BulkConfig,
    abort: CancellationToken,
) -> Result<(), String> {
    let mut builder = BatchBuilder::new(config.max_docs, config.max_bytes);
    while let Some(page) = pages.recv().await {
        if abort.is_cancelled() {
            return Ok(());
        }
        let mut skipped = 0;
        let mut full = Vec::new();
        for row in &page {
            let source = SourceRow::from_row(row)
                .map_err(|e| format!("{} has an unexpected shape: {e}", media.temp_table()))?;
            let Some(doc) = to_document(media, &source) else {
                skipped += 1;
                continue;
            };
            match builder.push(source.id, |out| write_bulk_action(&doc, out)) {
                Ok(Some(batch)) => full.push(batch),
                Ok(None) => {}
                Err(e) => {
                    task.counters.add_failed(1);
                    task.record_error(format!("id {}: cannot serialise document: {e}", source.id));
                }
            }
        }
        drop(page);
        task.counters.add_skipped(skipped);
        for batch in full {
            if batches.send(batch).await.is_err() {
                return Ok(());
            }
        }
    }
    if let Some(batch) = builder.finish() {
        if !abort.is_cancelled() {
            let _ = batches.send(batch).await;
        }
    }
    Ok(())
}

async fn send_batches(
    es: EsClient,
    config: BulkConfig,
    task: Arc<Task>,
    mut batches: mpsc::Receiver<Batch>,
    abort: CancellationToken,
    fail: impl Fn(String) + Clone,
) {
    let index = task.spec.target_index.clone();
    let stream = futures::stream::poll_fn(|cx| batches.poll_recv(cx));
    stream
        .for_each_concurrent(config.in_flight, |batch| {
            let (es, config, task, abort, fail, index) = (
                es.clone(),
                config.clone(),
                task.clone(),
                abort.clone(),
                fail.clone(),
                index.clone(),
            );
            async move {
                // Once stopping, queued batches are left unsent (and uncounted), not failed.
                if abort.is_cancelled() {
                    return;
                }
                if let Err(e) = index_batch(&es, &index, &config, &task, batch, &abort).await {
                    fail(format!("Elasticsearch bulk indexing failed: {e}"));
                }
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_db_hides_credentials() {
        let d = describe_db("postgres://user:hunter2@db.example:6543/openledger");
        assert_eq!(d, "db.example:6543/openledger");
        assert!(!describe_db("not a url at all ::").contains("hunter2"));
    }
}
