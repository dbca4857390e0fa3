//! Step 2, copy data: catalog → `temp_import_<media>` in the API database over `postgres_fdw`.
//!
//! One call copies keyset batches (`identifier > cursor AND identifier <= window end ORDER BY
//! identifier LIMIT n`, see [`KeyWindow`]) until its time budget is used, then returns a
//! cursor; the state machine calls again until `done`.
//! - Only the columns both the API table and the catalog table have are copied; `id` comes
//!   from the temp table's own sequence.
//! - Rows whose identifier is in `api_deleted<media>` are skipped.
//! - Tags are filtered inside the batch's `SELECT` ([`TagFilterSql`]), so each row is written
//!   once and the table holds no dead row versions for the reindex to read past.
//! - Outside production a row limit caps the rows inserted.
//! - When the catalog is exhausted: primary key on `id`, and for audio `audioset` is replaced
//!   from the catalog's `audioset_view` (no deleted-rows check). On a production table both
//!   can outlive a Lambda: with [`CopyRequest::defer_finish`] the call reports `done` with
//!   `finish_deferred`, and the worker's `finish_copy` job ([`finish_copy_job`]) does them.
//!
//! Each call creates the FDW server, user mapping and foreign tables, and drops them again
//! before it returns — on success and on failure — so the catalog password never outlives a
//! call; a retried call recreates them. All batches of one call are one transaction, and the
//! committed position is stored in the temp table's comment inside that transaction: a call
//! that fails copies nothing, and a retry after a lost response resumes from what was really
//! committed, so no row is copied twice.

use crate::environment::Environment;
use crate::error::{ErrorKind, StepError, StepResult};
use crate::media::MediaType;
use crate::pg::error::PgResultExt;
use crate::pg::fdw::{create_fdw, drop_fdw, fdw_server_name, shared_columns, AUDIOSET_VIEW};
use crate::pg::job::{run_statement, CancellationToken, JobProgress};
use crate::pg::key_window::KeyWindow;
use crate::pg::sql::{quote_ident, quote_literal};
use crate::settings::CatalogFdw;
use crate::tags::{TagFilterConfig, TagFilterSql};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient};
use uuid::Uuid;

/// Rows read from the catalog per batch.
pub const DEFAULT_BATCH_SIZE: u64 = 50_000;
/// Leaves a Lambda (15 min maximum) room to finish the batch in flight and clean up.
pub const DEFAULT_TIME_BUDGET: Duration = Duration::from_secs(600);
const AUDIOSET_TABLE: &str = "audioset";

/// What one `copy_data` call should do.
#[derive(Debug, Clone)]
pub struct CopyRequest {
    pub media: MediaType,
    pub environment: Environment,
    /// Rows to insert at most; ignored in production, which always copies everything.
    pub row_limit: Option<u64>,
    pub tag_filter: TagFilterConfig,
    /// `false` copies `tags` as the catalog holds them, for the benchmark that measures what
    /// filtering inside the copy costs (`benches/run`); the pipeline always filters.
    pub filter_tags: bool,
    pub batch_size: u64,
    /// The call stops starting new batches once this much time has passed.
    pub time_budget: Duration,
    /// Leave the primary key and the audioset copy to [`finish_copy_job`] (the worker).
    pub defer_finish: bool,
}

impl CopyRequest {
    pub fn new(media: MediaType, environment: Environment, row_limit: Option<u64>) -> Self {
        CopyRequest {
            media,
            environment,
            row_limit,
            tag_filter: TagFilterConfig::default(),
            filter_tags: true,
            batch_size: DEFAULT_BATCH_SIZE,
            time_budget: DEFAULT_TIME_BUDGET,
            defer_finish: false,
        }
    }

    /// The limit that applies: none in production, whatever the input says.
    pub fn effective_row_limit(&self) -> Option<u64> {
        match self.environment {
            Environment::Production => None,
            Environment::Staging => self.row_limit,
        }
    }
}

/// Where a copy stands; passed back in by the state machine between calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyCursor {
    /// The last catalog identifier read (rows up to it are done). `None` before the first batch.
    pub last_identifier: Option<Uuid>,
    pub rows_copied: u64,
    pub rows_scanned: u64,
    /// All rows are copied; only finishing (primary key, audioset) remains.
    pub rows_done: bool,
    /// The identifier range the next batch may span ([`KeyWindow`]), in decimal (a 128-bit
    /// number); absent until a batch has come back full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_width: Option<String>,
}

/// The result of one call (docs/ARCHITECTURE.md `copy_data` output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyProgress {
    pub cursor: Option<CopyCursor>,
    /// Totals over all calls so far.
    pub rows_copied: u64,
    pub rows_scanned: u64,
    pub done: bool,
    /// All rows are copied, the primary key and audioset are left to the worker's
    /// `finish_copy` job (`defer_finish`).
    #[serde(default)]
    pub finish_deferred: bool,
}

pub fn temp_sequence_name(media: MediaType) -> &'static str {
    match media {
        MediaType::Image => "temp_import_image_id_seq",
        MediaType::Audio => "temp_import_audio_id_seq",
    }
}

fn live_sequence_name(media: MediaType) -> &'static str {
    match media {
        MediaType::Image => "image_id_seq",
        MediaType::Audio => "audio_id_seq",
    }
}

fn temp_pkey_name(media: MediaType) -> &'static str {
    match media {
        MediaType::Image => "temp_import_image_pkey",
        MediaType::Audio => "temp_import_audio_pkey",
    }
}

/// Runs one call of the copy. `cursor` is `None` on the first call (which (re)creates the
/// temp table) and the previous call's cursor afterwards.
pub async fn copy_data(
    api: &mut Client,
    fdw: &CatalogFdw,
    request: &CopyRequest,
    cursor: Option<&CopyCursor>,
) -> StepResult<CopyProgress> {
    if request.batch_size == 0 {
        return Err(StepError::invalid_input(
            "copy batch size must be at least 1",
        ));
    }
    request.tag_filter.validate()?;
    let media = request.media;
    let outcome = async {
        create_fdw(api, media, fdw).await?;
        copy_call(api, request, cursor).await
    }
    .await;
    // Always, whatever happened above: the user mapping holds the catalog password.
    let dropped = drop_fdw(api, media).await;
    match (outcome, dropped) {
        (Ok(progress), Ok(())) => Ok(progress),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Ok(())) => Err(e),
        (Err(e), Err(drop_err)) => {
            tracing::error!(error = %drop_err, media = %media, "dropping the FDW server after a failed copy also failed");
            Err(e)
        }
    }
}

async fn table_exists(api: &impl GenericClient, table: &str) -> StepResult<bool> {
    let row = api
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&quote_ident(table)])
        .await
        .context("checking the temp table")?;
    Ok(row.get(0))
}

async fn stored_cursor(
    api: &impl GenericClient,
    media: MediaType,
) -> StepResult<Option<CopyCursor>> {
    let row = api
        .query_one(
            "SELECT obj_description(to_regclass($1), 'pg_class')",
            &[&quote_ident(media.temp_table())],
        )
        .await
        .context("reading the copy position")?;
    let text: Option<String> = row.get(0);
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

async fn store_cursor(
    api: &impl GenericClient,
    media: MediaType,
    cursor: &CopyCursor,
) -> StepResult<()> {
    let json = serde_json::to_string(cursor).map_err(|e| {
        StepError::new(
            ErrorKind::Internal,
            format!("serialising the copy cursor: {e}"),
        )
    })?;
    api.batch_execute(&format!(
        "COMMENT ON TABLE {} IS {}",
        quote_ident(media.temp_table()),
        quote_literal(&json)
    ))
    .await
    .context("storing the copy position")
}

/// `temp_import_<media>` like the live table, with its own id sequence (so dropping the live
/// table at promotion cannot take the temp table's id default with it).
async fn create_temp_table(api: &mut Client, media: MediaType) -> StepResult<()> {
    let temp = quote_ident(media.temp_table());
    let live = quote_ident(media.table());
    let seq = quote_ident(temp_sequence_name(media));
    let tx = api.transaction().await.context("starting a transaction")?;
    tx.batch_execute(&format!("DROP TABLE IF EXISTS {temp} CASCADE"))
        .await
        .context("dropping the old temp table")?;
    // A previous promotion may have left the old temp sequence owned by the live table under
    // the temp name: give it back the live name so the new one can be created.
    let leftover = tx
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL, to_regclass($2) IS NULL",
            &[&seq, &quote_ident(live_sequence_name(media))],
        )
        .await
        .context("checking sequences")?;
    if leftover.get::<_, bool>(0) {
        if leftover.get::<_, bool>(1) {
            tx.batch_execute(&format!(
                "ALTER SEQUENCE {seq} RENAME TO {}",
                quote_ident(live_sequence_name(media))
            ))
            .await
            .context("renaming the promoted table's sequence")?;
        } else {
            tx.batch_execute(&format!("DROP SEQUENCE {seq}"))
                .await
                .context("dropping a stray temp sequence")?;
        }
    }
    tx.batch_execute(&format!(
        "CREATE TABLE {temp} (LIKE {live} INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
         CREATE SEQUENCE {seq} AS integer OWNED BY {temp}.\"id\"; \
         ALTER TABLE {temp} ALTER COLUMN \"id\" SET DEFAULT nextval({});",
        quote_literal(&seq)
    ))
    .await
    .context("creating the temp table")?;
    store_cursor(
        &tx,
        media,
        &CopyCursor {
            last_identifier: None,
            rows_copied: 0,
            rows_scanned: 0,
            rows_done: false,
            key_width: None,
        },
    )
    .await?;
    tx.commit().await.context("committing the temp table")
}

/// The catalog side of a batch: `$1` the cursor (exclusive, or inclusive for the first
/// batch), `$2` the window's end, `$3` the batch size. The range is a `WHERE` clause, which
/// `postgres_fdw` always ships, so the catalog's query is bounded however it plans the `LIMIT`.
pub fn remote_batch_sql(media: MediaType, columns: &[String], first_batch: bool) -> String {
    let remote = format!(
        "{}.{}",
        quote_ident(fdw_server_name(media)),
        quote_ident(media.table())
    );
    let list = quoted_list(columns);
    // The first batch includes the nil uuid itself, later ones start after the cursor.
    let op = if first_batch { ">=" } else { ">" };
    format!(
        "SELECT {list} FROM {remote} \
         WHERE \"identifier\" {op} $1 AND \"identifier\" <= $2 ORDER BY \"identifier\" LIMIT $3"
    )
}

fn quoted_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One batch: [`remote_batch_sql`], then the insert into the temp table of its rows that are
/// not deleted, tags filtered; `$4` the rows the row limit still allows, the tag filter's
/// parameters from `$5` (none when `filter_tags` is false).
fn batch_sql(media: MediaType, columns: &[String], first_batch: bool, filter_tags: bool) -> String {
    let list = quoted_list(columns);
    let select = columns
        .iter()
        .map(|c| {
            if c == "tags" && filter_tags {
                TagFilterSql::expression("b.\"tags\"", 5)
            } else {
                format!("b.{}", quote_ident(c))
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH batch AS MATERIALIZED ( {remote} ), inserted AS ( \
           INSERT INTO {temp} ({list}) \
           SELECT {select} FROM batch AS b \
           WHERE NOT EXISTS (SELECT 1 FROM {deleted} AS d WHERE d.\"identifier\" = b.\"identifier\") \
           ORDER BY b.\"identifier\" LIMIT $4 \
           RETURNING \"identifier\" \
         ) \
         SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM inserted), \
                (SELECT \"identifier\" FROM batch ORDER BY \"identifier\" DESC LIMIT 1), \
                (SELECT \"identifier\" FROM inserted ORDER BY \"identifier\" DESC LIMIT 1)",
        remote = remote_batch_sql(media, columns, first_batch),
        temp = quote_ident(media.temp_table()),
        deleted = quote_ident(media.deleted_table()),
    )
}

async fn copy_call(
    api: &mut Client,
    request: &CopyRequest,
    cursor: Option<&CopyCursor>,
) -> StepResult<CopyProgress> {
    let media = request.media;
    let started = Instant::now();
    let mut position = match cursor {
        None => {
            create_temp_table(api, media).await?;
            CopyCursor {
                last_identifier: None,
                rows_copied: 0,
                rows_scanned: 0,
                rows_done: false,
                key_width: None,
            }
        }
        Some(_) => {
            if !table_exists(&*api, media.temp_table()).await? {
                return Err(StepError::invalid_state(format!(
                    "{} does not exist: the copy must start again without a cursor",
                    media.temp_table()
                )));
            }
            // What the database committed wins over what the caller remembers.
            stored_cursor(&*api, media).await?.ok_or_else(|| {
                StepError::invalid_state(format!(
                    "{} has no copy position: it was not made by copy_data; start again without a cursor",
                    media.temp_table()
                ))
            })?
        }
    };

    let copied_this_call = !position.rows_done;
    if copied_this_call {
        let columns = shared_columns(&*api, media, media.table(), media.table()).await?;
        if !columns.iter().any(|c| c == "identifier") {
            return Err(StepError::invalid_state(
                "the catalog and API tables share no identifier column",
            ));
        }
        let first_sql = batch_sql(media, &columns, true, request.filter_tags);
        let next_sql = batch_sql(media, &columns, false, request.filter_tags);
        let tags = request.tag_filter.sql_params();
        let limit = request.effective_row_limit();
        let batch_size = i64::try_from(request.batch_size).unwrap_or(i64::MAX);

        let tx = api
            .transaction()
            .await
            .context("starting the copy transaction")?;
        loop {
            let remaining = limit.map(|l| l.saturating_sub(position.rows_copied));
            if remaining == Some(0) {
                position.rows_done = true;
                break;
            }
            let width = position
                .key_width
                .as_deref()
                .and_then(|w| w.parse::<u128>().ok());
            let window = KeyWindow::after(position.last_identifier, width);
            let (sql, from) = match window.lower {
                None => (&first_sql, Uuid::nil()),
                Some(last) => (&next_sql, last),
            };
            let insert_limit: Option<i64> = remaining.map(|r| i64::try_from(r).unwrap_or(i64::MAX));
            let mut params: Vec<&(dyn ToSql + Sync)> =
                vec![&from, &window.upper, &batch_size, &insert_limit];
            if request.filter_tags {
                params.extend(tags.params());
            }
            let row = tx
                .query_one(sql.as_str(), &params)
                .await
                .context("copying a batch from the catalog")?;
            let scanned = row.get::<_, i64>(0) as u64;
            let inserted = row.get::<_, i64>(1) as u64;
            let last_scanned: Option<Uuid> = row.get(2);
            let last_inserted: Option<Uuid> = row.get(3);
            position.rows_scanned += scanned;
            position.rows_copied += inserted;
            let limit_hit = remaining.is_some_and(|r| inserted >= r);
            let advance = window.advance(scanned, request.batch_size, last_scanned);
            // When the limit cut the batch short, rows after the last inserted one were not taken.
            position.last_identifier = if limit_hit {
                last_inserted.or(position.last_identifier)
            } else {
                advance.cursor
            };
            position.key_width = advance.width.map(|w| w.to_string());
            tracing::info!(
                media = %media, batch_rows = scanned, batch_inserted = inserted,
                rows_copied = position.rows_copied, rows_scanned = position.rows_scanned,
                "copied a batch"
            );
            if limit_hit || advance.exhausted {
                position.rows_done = true;
                break;
            }
            if started.elapsed() >= request.time_budget {
                break;
            }
        }
        store_cursor(&tx, media, &position).await?;
        tx.commit().await.context("committing the copy")?;
    }

    if position.rows_done && request.defer_finish {
        return Ok(CopyProgress {
            rows_copied: position.rows_copied,
            rows_scanned: position.rows_scanned,
            cursor: Some(position),
            done: true,
            finish_deferred: true,
        });
    }
    // Finishing (primary key, audioset) is left to the next call when this one copied and used
    // half its budget: the key's index build on a full table takes a while.
    if position.rows_done && (!copied_this_call || started.elapsed() < request.time_budget / 2) {
        finish_copy(api, media).await?;
        return Ok(CopyProgress {
            rows_copied: position.rows_copied,
            rows_scanned: position.rows_scanned,
            cursor: Some(position),
            done: true,
            finish_deferred: false,
        });
    }
    Ok(CopyProgress {
        rows_copied: position.rows_copied,
        rows_scanned: position.rows_scanned,
        cursor: Some(position),
        done: false,
        finish_deferred: false,
    })
}

async fn has_primary_key(api: &impl GenericClient, media: MediaType) -> StepResult<bool> {
    api.query_one(
        "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p')",
        &[&quote_ident(media.temp_table())],
    )
    .await
    .context("checking the temp table's primary key")
    .map(|row| row.get(0))
}

fn primary_key_sql(media: MediaType) -> String {
    format!(
        "ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY (\"id\")",
        quote_ident(media.temp_table()),
        quote_ident(temp_pkey_name(media))
    )
}

/// `DELETE FROM audioset` and the `INSERT … SELECT` from the catalog's `audioset_view`: two
/// statements, because a DELETE in a CTE and the INSERT share one snapshot, so the INSERT
/// would collide with the unique keys of the rows being deleted. Run in one transaction.
async fn audioset_sql(api: &impl GenericClient, media: MediaType) -> StepResult<[String; 2]> {
    let columns = shared_columns(api, media, AUDIOSET_TABLE, AUDIOSET_VIEW).await?;
    let list = quoted_list(&columns);
    Ok([
        format!("DELETE FROM {}", quote_ident(AUDIOSET_TABLE)),
        format!(
            "INSERT INTO {set} ({list}) SELECT {list} FROM {}.{}",
            quote_ident(fdw_server_name(media)),
            quote_ident(AUDIOSET_VIEW),
            set = quote_ident(AUDIOSET_TABLE),
        ),
    ])
}

async fn finish_copy(api: &mut Client, media: MediaType) -> StepResult<()> {
    let tx = api
        .transaction()
        .await
        .context("starting the copy's last transaction")?;
    if !has_primary_key(&tx, media).await? {
        tx.batch_execute(&primary_key_sql(media))
            .await
            .context("adding the temp table's primary key")?;
    }
    if media == MediaType::Audio {
        let [clear, fill] = audioset_sql(&tx, media).await?;
        tx.execute(&clear, &[]).await.context("clearing audioset")?;
        let copied = tx
            .execute(&fill, &[])
            .await
            .context("replacing audioset from the catalog's audioset_view")?;
        tracing::info!(rows = copied, "audioset replaced");
    }
    tx.commit()
        .await
        .context("committing the copy's last transaction")
}

/// The worker's `finish_copy` job's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishCopyReport {
    /// False when the temp table already had its primary key (a rerun).
    pub primary_key_added: bool,
    /// Rows copied into `audioset` (audio only).
    pub audioset_rows: Option<u64>,
}

/// The end of the copy as a worker job, after a `copy_data` with `defer_finish` reported
/// `done`: the temp table's primary key (skipped when present), and for audio `audioset`
/// replaced from the catalog in one transaction (over an FDW server created for the job and
/// dropped after it, as `copy_data` does). Each statement runs through
/// [`run_statement`], so it is reported and cancelled with the job; a killed job leaves
/// nothing half done (each is one transaction) and is simply run again.
pub async fn finish_copy_job(
    api: &Client,
    fdw: Option<&CatalogFdw>,
    media: MediaType,
    progress: &JobProgress,
    cancel: &CancellationToken,
) -> StepResult<FinishCopyReport> {
    let temp_table = media.temp_table();
    if !table_exists(api, temp_table).await? {
        return Err(StepError::invalid_state(format!(
            "{temp_table} does not exist: run the copy first"
        )));
    }
    match stored_cursor(api, media).await? {
        Some(cursor) if cursor.rows_done => {}
        Some(_) => {
            return Err(StepError::invalid_state(format!(
                "the copy into {temp_table} has not copied every row yet: finish it before its primary key"
            )))
        }
        None => {
            return Err(StepError::invalid_state(format!(
                "{temp_table} has no copy position: it was not made by copy_data"
            )))
        }
    }
    let audio = media == MediaType::Audio;
    let needs_key = !has_primary_key(api, media).await?;
    progress.plan(usize::from(needs_key) + if audio { 2 } else { 0 });
    if needs_key {
        run_statement(
            api,
            &format!("adding the primary key of {temp_table}"),
            &primary_key_sql(media),
            progress,
            cancel,
        )
        .await?;
    }
    let audioset_rows = if audio {
        let fdw = fdw.ok_or_else(|| {
            StepError::new(
                ErrorKind::Configuration,
                "the audioset copy needs the catalog FDW settings (the secret's catalog_fdw, or CATALOG_FDW for a worker started without REFRESH_SECRET_ID)",
            )
        })?;
        create_fdw(api, media, fdw).await?;
        let copied = replace_audioset(api, media, progress, cancel).await;
        let dropped = drop_fdw(api, media).await;
        match (copied, dropped) {
            (Ok(rows), Ok(())) => Some(rows),
            (Err(e), _) | (Ok(_), Err(e)) => return Err(e),
        }
    } else {
        None
    };
    Ok(FinishCopyReport {
        primary_key_added: needs_key,
        audioset_rows,
    })
}

async fn replace_audioset(
    api: &Client,
    media: MediaType,
    progress: &JobProgress,
    cancel: &CancellationToken,
) -> StepResult<u64> {
    let [clear, fill] = audioset_sql(api, media).await?;
    api.batch_execute("BEGIN")
        .await
        .context("starting the audioset transaction")?;
    let result = async {
        run_statement(api, "clearing audioset", &clear, progress, cancel).await?;
        let rows = run_statement(
            api,
            "replacing audioset from the catalog's audioset_view",
            &fill,
            progress,
            cancel,
        )
        .await?;
        api.batch_execute("COMMIT")
            .await
            .context("committing audioset")?;
        Ok(rows)
    }
    .await;
    if result.is_err() {
        let _ = api.batch_execute("ROLLBACK").await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_ignores_the_row_limit() {
        let staging = CopyRequest::new(MediaType::Image, Environment::Staging, Some(10));
        assert_eq!(staging.effective_row_limit(), Some(10));
        let production = CopyRequest::new(MediaType::Image, Environment::Production, Some(10));
        assert_eq!(production.effective_row_limit(), None);
    }

    #[test]
    fn batch_sql_filters_tags_and_skips_deleted() {
        let cols = vec![
            "identifier".to_string(),
            "tags".to_string(),
            "url".to_string(),
        ];
        let sql = batch_sql(MediaType::Audio, &cols, false, true);
        assert!(sql.contains("\"upstream_audio\".\"audio\""));
        assert!(sql.contains("\"api_deletedaudio\""));
        assert!(
            sql.contains("INSERT INTO \"temp_import_audio\" (\"identifier\", \"tags\", \"url\")")
        );
        assert!(sql.contains("jsonb_array_elements(b.\"tags\")"));
        assert!(sql.contains("\"identifier\" > $1 AND \"identifier\" <= $2"));
        assert!(batch_sql(MediaType::Audio, &cols, true, true).contains("\"identifier\" >= $1"));
    }

    #[test]
    fn batch_sql_without_the_filter_copies_tags_and_binds_four_parameters() {
        let cols = vec!["identifier".to_string(), "tags".to_string()];
        let sql = batch_sql(MediaType::Image, &cols, false, false);
        assert!(sql.contains("SELECT b.\"identifier\", b.\"tags\" FROM batch"));
        assert!(!sql.contains("$5"), "{sql}");
        assert!(sql.contains("\"api_deletedimage\""));
    }
}
