//! One reindex task: read → convert → send, overlapped so Elasticsearch never waits.
//!
//! - reader: keyset pages of `page_rows` rows (`refresh_core::document::select_sql`) into a
//!   channel of two pages;
//! - converter: each row → `SourceRow` → `Document` → NDJSON pair, cut into batches by
//!   document count and bytes, into a channel as deep as the number of senders; with dual
//!   write, the same pair also goes into the filtered index's batches unless the document
//!   has a sensitive term (`refresh_core::sensitive`, the list read once per task);
//! - senders: `in_flight` bulk requests at once, each with its own retries
//!   ([`BulkSender`]); each attempt's outcome is recorded on the task here.
//!
//! Memory is bounded by (2 pages + 1 page being converted) + (in_flight + queue + 1
//! being built) batches, whatever the size of the range.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use refresh_core::document::{select_sql, to_document, write_bulk_action, SourceRow};
use refresh_core::es::{load_sensitive_terms, SearchClient};
use refresh_core::media::MediaType;
use refresh_core::pg::connect::{connect, describe, parse_url};
use refresh_core::pg::error::pg_error;
use refresh_core::sensitive::SensitiveTerms;
use refresh_core::settings::CatalogFdw;
use tokio::sync::mpsc;
use tokio_postgres::Row;
use tokio_util::sync::CancellationToken;

use crate::bulk::{Batch, BatchBuilder, BulkConfig, BulkOutcome, BulkSender};
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
    pub es: SearchClient,
    /// How the API database reaches the catalog over `postgres_fdw`: only the `finish_copy`
    /// job of audio needs it (the audioset copy). Its `Debug` hides user and password.
    pub catalog_fdw: Option<CatalogFdw>,
    /// Where the sensitive-terms list is (`SENSITIVE_TERMS_URL`): dual-write tasks read it.
    /// `Debug` says only whether it is set (a URL may carry a token).
    pub sensitive_terms_url: Option<String>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Services {{ db: <redacted>, es: {:?}, catalog_fdw: {:?}, sensitive_terms: {} }}",
            self.es,
            self.catalog_fdw,
            if self.sensitive_terms_url.is_some() {
                "set"
            } else {
                "unset"
            }
        )
    }
}

/// Which index a batch goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Main,
    Filtered,
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
        Err(Stop::Shutdown) if task.cancel_requested() => Some(format!(
            "task cancelled before the range was finished: {}",
            status_counts(&task)
        )),
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
    // `host:port/dbname` only: the URL carries the password.
    let cannot_connect = |e| Stop::Failed(format!("cannot connect to the API database: {e}"));
    let db = describe(&parse_url(&services.db_url).map_err(cannot_connect)?);
    let client = Arc::new(connect(&services.db_url).await.map_err(cannot_connect)?);

    let count_sql = format!(
        "SELECT count(*) FROM \"{}\" WHERE id BETWEEN $1::bigint AND $2::bigint",
        media.temp_table()
    );
    let rows_total: i64 = client
        .query_one(&count_sql, &[&spec.start_id, &spec.end_id])
        .await
        .map_err(|e| {
            Stop::Failed(db_failure(
                &format!("counting rows of {} in {db}", media.temp_table()),
                e,
            ))
        })?
        .get(0);
    task.counters.rows_total.store(
        rows_total.max(0) as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    let sensitive = match &spec.filtered_index {
        Some(_) => Some(Arc::new(
            read_sensitive_terms(services).await.map_err(Stop::Failed)?,
        )),
        None => None,
    };
    tracing::info!(task_id = %task.id, table = media.temp_table(), index = %spec.target_index,
        filtered_index = spec.filtered_index.as_deref(),
        sensitive_terms = sensitive.as_ref().map(|terms| terms.len()),
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
    let (batch_tx, batch_rx) = mpsc::channel::<(Target, Batch)>(config.bulk.in_flight);

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
        sensitive,
        abort.clone(),
    );
    let sender_into = |index: &String| {
        BulkSender::new(
            services.es.clone(),
            index.clone(),
            config.bulk.clone(),
            task.id.clone(),
        )
    };
    let senders = Senders {
        main: sender_into(&spec.target_index),
        filtered: spec.filtered_index.as_ref().map(sender_into),
    };
    let senders = send_batches(senders, task, batch_rx, &abort, &fail);

    let (read, convert, ()) = tokio::join!(reader, converter, senders);
    if let Err(message) = read.and(convert) {
        fail(message);
    }
    // Closes the connection (its task ends with the client).
    drop(client);

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

/// The list from `SENSITIVE_TERMS_URL`, once per task (`api.rs` refuses a dual-write task
/// when it is not set).
async fn read_sensitive_terms(services: &Services) -> Result<SensitiveTerms, String> {
    let location = services.sensitive_terms_url.as_deref().ok_or(
        "the worker has no sensitive terms list (SENSITIVE_TERMS_URL) for the filtered index",
    )?;
    let cannot = |e: refresh_core::error::StepError| {
        format!("cannot read the sensitive terms list: {}", e.message)
    };
    let list = load_sensitive_terms(location).await.map_err(cannot)?;
    SensitiveTerms::new(&list).map_err(cannot)
}

/// `<context>: PostgreSQL error <SQLSTATE>: <server message>; detail: …` through
/// `refresh_core::pg::error`, the one mapping: tokio-postgres' own `Display` says only
/// "db error", hiding the reason (a missing temp table, a cancelled statement, …).
fn db_failure(context: &str, err: tokio_postgres::Error) -> String {
    pg_error(context, err).message
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
        .map_err(|e| db_failure(&format!("reading {table}"), e))?;
    let limit = i64::from(page_rows);
    // Exclusive cursor; saturating so start_id = i64::MIN cannot overflow.
    let mut cursor = start_id.saturating_sub(1);
    while cursor < end_id && !abort.is_cancelled() {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&cursor, &end_id, &limit];
        let rows = tokio::select! {
            rows = client.query(&statement, &params) => rows.map_err(|e| db_failure(&format!("reading {table} after id {cursor}"), e))?,
            _ = abort.cancelled() => break,
        };
        let Some(last) = rows.last() else { break };
        let last_id: i64 = last
            .try_get("id")
            .map_err(|e| db_failure(&format!("reading {table}: the id column"), e))?;
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
    batches: mpsc::Sender<(Target, Batch)>,
    config: BulkConfig,
    sensitive: Option<Arc<SensitiveTerms>>,
    abort: CancellationToken,
) -> Result<(), String> {
    let mut main = BatchBuilder::new(config.max_docs, config.max_bytes);
    // Dual write: the filtered index's batches and the terms that keep a document out.
    let mut filtered =
        sensitive.map(|terms| (terms, BatchBuilder::new(config.max_docs, config.max_bytes)));
    // One serialisation per document: its pair is copied into both batches.
    let mut pair = Vec::new();
    while let Some(page) = pages.recv().await {
        if abort.is_cancelled() {
            return Ok(());
        }
        let (mut skipped, mut left_out) = (0, 0);
        let mut full = Vec::new();
        for row in &page {
            let source = SourceRow::from_row(row).map_err(|e| {
                db_failure(
                    &format!("{} has an unexpected shape", media.temp_table()),
                    e,
                )
            })?;
            let Some(doc) = to_document(media, &source) else {
                skipped += 1;
                continue;
            };
            let pushed = match &mut filtered {
                None => main
                    .push(source.id, |out| write_bulk_action(&doc, out))
                    .map(|batch| (batch, None)),
                Some((terms, filtered_builder)) => {
                    pair.clear();
                    write_bulk_action(&doc, &mut pair).map(|()| {
                        let copy = |out: &mut Vec<u8>| {
                            out.extend_from_slice(&pair);
                            Ok::<(), std::convert::Infallible>(())
                        };
                        let main_batch = main.push(source.id, copy).unwrap_or_else(|e| match e {});
                        let filtered_batch = if terms.is_sensitive(&doc) {
                            left_out += 1;
                            None
                        } else {
                            filtered_builder
                                .push(source.id, copy)
                                .unwrap_or_else(|e| match e {})
                        };
                        (main_batch, filtered_batch)
                    })
                }
            };
            match pushed {
                Ok((main_batch, filtered_batch)) => {
                    full.extend(main_batch.map(|b| (Target::Main, b)));
                    full.extend(filtered_batch.map(|b| (Target::Filtered, b)));
                }
                Err(e) => {
                    task.counters.add_failed(1);
                    task.record_error(format!("id {}: cannot serialise document: {e}", source.id));
                }
            }
        }
        drop(page);
        task.counters.add_skipped(skipped);
        task.counters.add_sensitive(left_out);
        for routed in full {
            if batches.send(routed).await.is_err() {
                return Ok(());
            }
        }
    }
    let last = [
        main.finish().map(|b| (Target::Main, b)),
        filtered
            .as_mut()
            .and_then(|(_, builder)| builder.finish())
            .map(|b| (Target::Filtered, b)),
    ];
    for routed in last.into_iter().flatten() {
        if abort.is_cancelled() || batches.send(routed).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// One sender per index the task writes.
struct Senders {
    main: BulkSender,
    filtered: Option<BulkSender>,
}

async fn send_batches(
    senders: Senders,
    task: &Task,
    mut batches: mpsc::Receiver<(Target, Batch)>,
    abort: &CancellationToken,
    fail: &impl Fn(String),
) {
    let senders = &senders;
    let stream = futures::stream::poll_fn(|cx| batches.poll_recv(cx));
    stream
        .for_each_concurrent(
            senders.main.config().in_flight,
            |(target, batch)| async move {
                // Once stopping, queued batches are left unsent (and uncounted), not failed.
                if abort.is_cancelled() {
                    return;
                }
                let sender = match (target, &senders.filtered) {
                    (Target::Filtered, Some(filtered)) => filtered,
                    _ => &senders.main,
                };
                let sent = sender
                    .send(batch, abort, |outcome| {
                        record_outcome(task, target, outcome)
                    })
                    .await;
                if let Err(e) = sent {
                    let which = match target {
                        Target::Main => "",
                        Target::Filtered => " into the filtered index",
                    };
                    fail(format!("Elasticsearch bulk indexing{which} failed: {e}"));
                }
            },
        )
        .await;
}

/// Records what a bulk attempt settled on the task: its counters and first errors.
fn record_outcome(task: &Task, target: Target, outcome: BulkOutcome) {
    match target {
        Target::Main => {
            task.counters.add_indexed(outcome.indexed);
            task.counters.add_failed(outcome.failed);
        }
        Target::Filtered => {
            task.counters.add_filtered_indexed(outcome.indexed);
            task.counters.add_filtered_failed(outcome.failed);
        }
    }
    for error in outcome.errors {
        let index = match target {
            Target::Main => &task.spec.target_index,
            Target::Filtered => task
                .spec
                .filtered_index
                .as_ref()
                .unwrap_or(&task.spec.target_index),
        };
        if let Some(id) = error.id {
            tracing::warn!(task_id = %task.id, id, %index, error = %error.error, "document not indexed");
        }
        match target {
            Target::Main => task.record_error(error.to_string()),
            Target::Filtered => task.record_error(format!("{index}: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_db_hides_credentials() {
        // The worker describes its database with refresh_core's helpers.
        let d = describe(&parse_url("postgres://user:hunter2@db.example:6543/openledger").unwrap());
        assert_eq!(d, "db.example:6543/openledger");
        assert!(!parse_url("not a url at all ::")
            .unwrap_err()
            .message
            .contains("hunter2"));
    }

    /// A PostgreSQL server that accepts any connection and answers every statement with the
    /// error `code` / `message`, as a server missing the temp table does (wire protocol 3).
    async fn failing_postgres(code: &'static str, message: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            // StartupMessage: an Int32 length (itself included), no type byte.
            let Ok(len) = socket.read_i32().await else {
                return;
            };
            let mut startup = vec![0; len as usize - 4];
            if socket.read_exact(&mut startup).await.is_err() {
                return;
            }
            // AuthenticationOk, ReadyForQuery (idle).
            let _ = socket.write_all(b"R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I").await;
            loop {
                let mut tag = [0u8; 1];
                if socket.read_exact(&mut tag).await.is_err() {
                    return;
                }
                let Ok(len) = socket.read_i32().await else {
                    return;
                };
                let mut body = vec![0; len as usize - 4];
                if socket.read_exact(&mut body).await.is_err() || tag[0] == b'X' {
                    return;
                }
                // Sync ends each extended-protocol statement: answer ErrorResponse + ReadyForQuery.
                if tag[0] == b'S' {
                    let mut fields = Vec::new();
                    for (field, value) in [
                        (b'S', "ERROR"),
                        (b'V', "ERROR"),
                        (b'C', code),
                        (b'M', message),
                    ] {
                        fields.push(field);
                        fields.extend_from_slice(value.as_bytes());
                        fields.push(0);
                    }
                    fields.push(0);
                    let mut reply = vec![b'E'];
                    reply.extend_from_slice(&(fields.len() as i32 + 4).to_be_bytes());
                    reply.extend_from_slice(&fields);
                    reply.extend_from_slice(b"Z\0\0\0\x05I");
                    if socket.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            }
        });
        format!("postgres://worker@127.0.0.1:{port}/openledger")
    }

    #[tokio::test]
    async fn a_database_failure_keeps_the_servers_reason() {
        use crate::tasks::{Started, TaskRegistry, TaskSpec};
        let db_url =
            failing_postgres("42P01", "relation \"temp_import_image\" does not exist").await;
        let services = Services {
            db_url,
            es: SearchClient::new("http://127.0.0.1:1").unwrap(),
            catalog_fdw: None,
            sensitive_terms_url: None,
        };
        let registry = TaskRegistry::default();
        let Started::New(task) = registry.start(TaskSpec {
            media: MediaType::Image,
            target_index: "image-x".into(),
            filtered_index: None,
            start_id: 1,
            end_id: 10,
        }) else {
            panic!("first task")
        };
        run_task(
            services,
            PipelineConfig::default(),
            task.clone(),
            CancellationToken::new(),
        )
        .await;
        let status = task.status();
        assert!(!status.active);
        let error = status.error.expect("the task failed");
        assert!(
            error.contains("counting rows of temp_import_image in 127.0.0.1:")
                && error.contains("PostgreSQL error 42P01")
                && error.contains("relation \"temp_import_image\" does not exist"),
            "the task error must carry the server's reason: {error}"
        );
        assert!(!error.contains("db error"), "{error}");
    }

    #[test]
    fn outcomes_are_recorded_on_the_task() {
        use crate::bulk::NotIndexed;
        use crate::tasks::{Started, TaskRegistry, TaskSpec};
        let registry = TaskRegistry::default();
        let Started::New(task) = registry.start(TaskSpec {
            media: MediaType::Image,
            target_index: "image-x".into(),
            filtered_index: None,
            start_id: 1,
            end_id: 10,
        }) else {
            panic!("first task")
        };
        record_outcome(
            &task,
            Target::Main,
            BulkOutcome {
                indexed: 5,
                failed: 3,
                errors: vec![
                    NotIndexed {
                        id: Some(7),
                        error: "400 mapper_parsing_exception: x".into(),
                    },
                    NotIndexed {
                        id: None,
                        error: "stopped while retrying 2 document(s): y".into(),
                    },
                ],
            },
        );
        let status = task.status();
        assert_eq!((status.indexed, status.failed), (5, 3));
        assert_eq!(
            status.first_errors,
            vec![
                "id 7: 400 mapper_parsing_exception: x".to_string(),
                "stopped while retrying 2 document(s): y".to_string()
            ]
        );
    }
}
