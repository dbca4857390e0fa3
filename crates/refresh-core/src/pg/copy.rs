//! Step 2, copy data: catalog → `temp_import_<media>` in the API database over `postgres_fdw`.
//!
//! One call copies keyset batches (`identifier > cursor AND identifier <= window end ORDER BY
//! identifier LIMIT n`, see [`KeyWindow`]) until its time budget is used, then returns a
//! cursor; the state machine calls again until `done`.
//! - The key space is split into lanes ([`key_window::lanes`], [`CopyRequest::sessions`] of
//!   them) copied at once over as many database sessions, each with its own FDW connection to
//!   the catalog: one session is bound by one backend on each side, and a production catalog
//!   takes hours in one. A row limit copies in one lane, so the limit keeps identifier order.
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
//! call; a retried call recreates them. All batches of one lane in one call are one
//! transaction, and the lane's committed position is stored in `temp_import_<media>_copy_lanes`
//! inside that transaction: a lane that fails copies nothing, and a retry after a lost response
//! resumes every lane from what was really committed, so no row is copied twice. When every
//! lane is done, the totals move to the temp table's comment and the lanes table is dropped.

use crate::environment::Environment;
use crate::error::{ErrorKind, StepError, StepResult};
use crate::media::MediaType;
use crate::pg::error::PgResultExt;
use crate::pg::fdw::{create_fdw, drop_fdw, fdw_server_name, shared_columns, AUDIOSET_VIEW};
use crate::pg::job::{run_statement, CancellationToken, JobProgress};
use crate::pg::key_window::{self, KeyWindow};
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
/// Sessions (and key lanes) a copy spreads over unless configured.
pub const DEFAULT_SESSIONS: usize = 4;
/// The most sessions a copy may use: each holds a connection to both databases.
pub const MAX_SESSIONS: usize = 16;
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
    /// Key lanes of a new copy, copied at once by as many sessions as the caller opens
    /// (1..=[`MAX_SESSIONS`]).
    pub sessions: usize,
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
            sessions: DEFAULT_SESSIONS,
        }
    }

    /// The lanes a new copy is split into: one under a row limit, so that the rows kept are
    /// the first ones by identifier as before.
    pub fn lane_count(&self) -> usize {
        if self.effective_row_limit().is_some() {
            1
        } else {
            self.sessions
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

/// Where a copy stands; passed back in by the state machine between calls. Only a summary:
/// each lane's position lives in the database, committed with its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyCursor {
    pub rows_copied: u64,
    pub rows_scanned: u64,
    /// All rows are copied; only finishing (primary key, audioset) remains.
    pub rows_done: bool,
    /// Key lanes of the copy, and how many of them are copied.
    pub lanes: usize,
    pub lanes_done: usize,
}

impl CopyCursor {
    fn of(lanes: &[LanePosition]) -> CopyCursor {
        CopyCursor {
            rows_copied: lanes.iter().map(|l| l.rows_copied).sum(),
            rows_scanned: lanes.iter().map(|l| l.rows_scanned).sum(),
            rows_done: lanes.iter().all(|l| l.done),
            lanes: lanes.len(),
            lanes_done: lanes.iter().filter(|l| l.done).count(),
        }
    }
}

/// One lane's committed position (a row of `temp_import_<media>_copy_lanes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LanePosition {
    /// The lane's key range, both ends included.
    first: Uuid,
    last: Uuid,
    /// The last catalog identifier read (rows up to it are done). `None` before the first batch.
    last_identifier: Option<Uuid>,
    rows_copied: u64,
    rows_scanned: u64,
    done: bool,
    /// The identifier range the next batch may span ([`KeyWindow`]), in decimal (a 128-bit
    /// number); absent until a batch has come back full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_width: Option<String>,
}

impl LanePosition {
    fn start((first, last): (Uuid, Uuid)) -> LanePosition {
        LanePosition {
            first,
            last,
            last_identifier: None,
            rows_copied: 0,
            rows_scanned: 0,
            done: false,
            key_width: None,
        }
    }
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

/// The table holding each lane's committed position while a copy runs.
pub fn lanes_table_name(media: MediaType) -> String {
    format!("{}_copy_lanes", media.temp_table())
}

fn temp_pkey_name(media: MediaType) -> &'static str {
    match media {
        MediaType::Image => "temp_import_image_pkey",
        MediaType::Audio => "temp_import_audio_pkey",
    }
}

/// Runs one call of the copy. `cursor` is `None` on the first call (which (re)creates the
/// temp table) and the previous call's cursor afterwards. `api` and each of `more_sessions`
/// (connections to the same API database) copy one lane at a time; lanes without a session
/// wait for a free one.
pub async fn copy_data(
    api: &mut Client,
    more_sessions: &mut [Client],
    fdw: &CatalogFdw,
    request: &CopyRequest,
    cursor: Option<&CopyCursor>,
) -> StepResult<CopyProgress> {
    if request.batch_size == 0 {
        return Err(StepError::invalid_input(
            "copy batch size must be at least 1",
        ));
    }
    if !(1..=MAX_SESSIONS).contains(&request.sessions) {
        return Err(StepError::new(
            ErrorKind::Configuration,
            format!(
                "copy sessions must be 1 to {MAX_SESSIONS}, not {}",
                request.sessions
            ),
        ));
    }
    request.tag_filter.validate()?;
    let media = request.media;
    let outcome = async {
        create_fdw(api, media, fdw).await?;
        copy_call(api, more_sessions, request, cursor).await
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

/// The copy's summary once every lane is done (the temp table's comment).
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

/// Each lane's committed position while the copy runs; `None` when there is no lanes table
/// (the copy is done, or the temp table was not made by `copy_data`).
async fn stored_lanes(
    api: &impl GenericClient,
    media: MediaType,
) -> StepResult<Option<Vec<LanePosition>>> {
    let table = lanes_table_name(media);
    if !table_exists(api, &table).await? {
        return Ok(None);
    }
    let rows = api
        .query(
            &format!("SELECT position FROM {} ORDER BY lane", quote_ident(&table)),
            &[],
        )
        .await
        .context("reading the copy lanes' positions")?;
    let lanes = rows
        .iter()
        .map(|row| serde_json::from_str::<LanePosition>(row.get(0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            StepError::invalid_state(format!(
                "{table} holds a position that is not a copy lane's ({e}): start the copy again without a cursor"
            ))
        })?;
    if lanes.is_empty() {
        return Err(StepError::invalid_state(format!(
            "{table} holds no lane: start the copy again without a cursor"
        )));
    }
    Ok(Some(lanes))
}

fn to_json<T: Serialize>(value: &T) -> StepResult<String> {
    serde_json::to_string(value).map_err(|e| {
        StepError::new(
            ErrorKind::Internal,
            format!("serialising the copy position: {e}"),
        )
    })
}

async fn store_lane(
    api: &impl GenericClient,
    media: MediaType,
    lane: i32,
    position: &LanePosition,
) -> StepResult<()> {
    let updated = api
        .execute(
            &format!(
                "UPDATE {} SET position = $2 WHERE lane = $1",
                quote_ident(&lanes_table_name(media))
            ),
            &[&lane, &to_json(position)?],
        )
        .await
        .context("storing a copy lane's position")?;
    if updated != 1 {
        return Err(StepError::invalid_state(format!(
            "copy lane {lane} is missing from {}: start the copy again without a cursor",
            lanes_table_name(media)
        )));
    }
    Ok(())
}

/// Every lane is done: the summary goes to the temp table's comment and the lanes table
/// goes, in one transaction (a retry after a failure here finds the lanes table again).
async fn seal_copy(api: &mut Client, media: MediaType, summary: &CopyCursor) -> StepResult<()> {
    let tx = api
        .transaction()
        .await
        .context("starting the copy's summary transaction")?;
    tx.batch_execute(&format!(
        "COMMENT ON TABLE {} IS {}; DROP TABLE {}",
        quote_ident(media.temp_table()),
        quote_literal(&to_json(summary)?),
        quote_ident(&lanes_table_name(media)),
    ))
    .await
    .context("storing the copy's summary")?;
    tx.commit().await.context("committing the copy's summary")
}

/// `temp_import_<media>` like the live table, with its own id sequence (so dropping the live
/// table at promotion cannot take the temp table's id default with it), and the lanes table
/// with each lane at its start.
async fn create_temp_table(
    api: &mut Client,
    media: MediaType,
    lanes: &[LanePosition],
) -> StepResult<()> {
    let temp = quote_ident(media.temp_table());
    let live = quote_ident(media.table());
    let seq = quote_ident(temp_sequence_name(media));
    let lanes_table = quote_ident(&lanes_table_name(media));
    let tx = api.transaction().await.context("starting a transaction")?;
    tx.batch_execute(&format!(
        "DROP TABLE IF EXISTS {temp} CASCADE; DROP TABLE IF EXISTS {lanes_table}"
    ))
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
         ALTER TABLE {temp} ALTER COLUMN \"id\" SET DEFAULT nextval({}); \
         CREATE TABLE {lanes_table} (lane integer PRIMARY KEY, position text NOT NULL);",
        quote_literal(&seq)
    ))
    .await
    .context("creating the temp table")?;
    let insert = format!("INSERT INTO {lanes_table} (lane, position) VALUES ($1, $2)");
    for (index, lane) in lanes.iter().enumerate() {
        let index = i32::try_from(index).unwrap_or(i32::MAX);
        tx.execute(&insert, &[&index, &to_json(lane)?])
            .await
            .context("recording the copy lanes")?;
    }
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

/// What every lane's batches share.
struct LaneJob<'a> {
    request: &'a CopyRequest,
    first_sql: String,
    next_sql: String,
    tags: TagFilterSql,
    started: Instant,
}

async fn copy_call(
    api: &mut Client,
    more_sessions: &mut [Client],
    request: &CopyRequest,
    cursor: Option<&CopyCursor>,
) -> StepResult<CopyProgress> {
    let media = request.media;
    let started = Instant::now();
    let lanes = match cursor {
        None => {
            let lanes: Vec<LanePosition> = key_window::lanes(request.lane_count())
                .into_iter()
                .map(LanePosition::start)
                .collect();
            create_temp_table(api, media, &lanes).await?;
            Some(lanes)
        }
        Some(_) => {
            if !table_exists(&*api, media.temp_table()).await? {
                return Err(StepError::invalid_state(format!(
                    "{} does not exist: the copy must start again without a cursor",
                    media.temp_table()
                )));
            }
            // What the database committed wins over what the caller remembers.
            stored_lanes(&*api, media).await?
        }
    };
    let (position, copied_this_call) = match lanes {
        Some(mut lanes) => {
            let pending: Vec<usize> = (0..lanes.len()).filter(|&i| !lanes[i].done).collect();
            if !pending.is_empty() {
                let job = lane_job(&*api, request, started).await?;
                let sessions = std::iter::once(&mut *api).chain(more_sessions.iter_mut());
                let mut work: Vec<(&mut Client, Vec<(usize, LanePosition)>)> = sessions
                    .take(pending.len())
                    .map(|session| (session, Vec::new()))
                    .collect();
                let session_count = work.len();
                // Lane k to session k mod n: with one session per lane, each copies its own.
                for (k, &lane) in pending.iter().enumerate() {
                    work[k % session_count].1.push((lane, lanes[lane].clone()));
                }
                let results = futures::future::join_all(
                    work.into_iter()
                        .map(|(session, queue)| copy_lanes(session, &job, queue)),
                )
                .await;
                let mut first_error = None;
                for result in results {
                    match result {
                        Ok(copied) => {
                            for (lane, position) in copied {
                                lanes[lane] = position;
                            }
                        }
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                // The other lanes committed theirs; a retry resumes every lane where it stands.
                if let Some(e) = first_error {
                    return Err(e);
                }
            }
            let summary = CopyCursor::of(&lanes);
            if summary.rows_done {
                seal_copy(api, media, &summary).await?;
            }
            (summary, !pending.is_empty())
        }
        None => {
            let summary = stored_cursor(&*api, media).await?.ok_or_else(|| {
                StepError::invalid_state(format!(
                    "{} has no copy position: it was not made by copy_data; start again without a cursor",
                    media.temp_table()
                ))
            })?;
            (summary, false)
        }
    };

    let progress = |done: bool, finish_deferred: bool| CopyProgress {
        rows_copied: position.rows_copied,
        rows_scanned: position.rows_scanned,
        cursor: Some(position.clone()),
        done,
        finish_deferred,
    };
    if position.rows_done && request.defer_finish {
        return Ok(progress(true, true));
    }
    // Finishing (primary key, audioset) is left to the next call when this one copied and used
    // half its budget: the key's index build on a full table takes a while.
    if position.rows_done && (!copied_this_call || started.elapsed() < request.time_budget / 2) {
        finish_copy(api, media).await?;
        return Ok(progress(true, false));
    }
    Ok(progress(false, false))
}

async fn lane_job<'a>(
    api: &Client,
    request: &'a CopyRequest,
    started: Instant,
) -> StepResult<LaneJob<'a>> {
    let media = request.media;
    let columns = shared_columns(api, media, media.table(), media.table()).await?;
    if !columns.iter().any(|c| c == "identifier") {
        return Err(StepError::invalid_state(
            "the catalog and API tables share no identifier column",
        ));
    }
    Ok(LaneJob {
        request,
        first_sql: batch_sql(media, &columns, true, request.filter_tags),
        next_sql: batch_sql(media, &columns, false, request.filter_tags),
        tags: request.tag_filter.sql_params(),
        started,
    })
}

/// One session's lanes, one after another, until the call's time budget is used.
async fn copy_lanes(
    session: &mut Client,
    job: &LaneJob<'_>,
    queue: Vec<(usize, LanePosition)>,
) -> StepResult<Vec<(usize, LanePosition)>> {
    let mut copied = Vec::with_capacity(queue.len());
    for (lane, position) in queue {
        // Each session copies at least one batch a call, however small the budget.
        if !copied.is_empty() && job.started.elapsed() >= job.request.time_budget {
            break;
        }
        let position = copy_lane(session, job, lane, position).await?;
        copied.push((lane, position));
    }
    Ok(copied)
}

/// Batches of one lane in one transaction, committed with the lane's new position.
async fn copy_lane(
    session: &mut Client,
    job: &LaneJob<'_>,
    lane: usize,
    mut position: LanePosition,
) -> StepResult<LanePosition> {
    let request = job.request;
    let media = request.media;
    let limit = request.effective_row_limit();
    let batch_size = i64::try_from(request.batch_size).unwrap_or(i64::MAX);
    let tx = session
        .transaction()
        .await
        .context("starting the copy transaction")?;
    loop {
        let remaining = limit.map(|l| l.saturating_sub(position.rows_copied));
        if remaining == Some(0) {
            position.done = true;
            break;
        }
        let width = position
            .key_width
            .as_deref()
            .and_then(|w| w.parse::<u128>().ok());
        let window = KeyWindow::within(
            position.first,
            position.last,
            position.last_identifier,
            width,
        );
        let (sql, from) = match window.lower {
            None => (&job.first_sql, window.first()),
            Some(last) => (&job.next_sql, last),
        };
        let insert_limit: Option<i64> = remaining.map(|r| i64::try_from(r).unwrap_or(i64::MAX));
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&from, &window.upper, &batch_size, &insert_limit];
        if request.filter_tags {
            params.extend(job.tags.params());
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
            media = %media, lane, batch_rows = scanned, batch_inserted = inserted,
            lane_rows_copied = position.rows_copied, lane_rows_scanned = position.rows_scanned,
            "copied a batch"
        );
        if limit_hit || advance.exhausted {
            position.done = true;
            break;
        }
        if job.started.elapsed() >= request.time_budget {
            break;
        }
    }
    let lane_number = i32::try_from(lane).unwrap_or(i32::MAX);
    store_lane(&tx, media, lane_number, &position).await?;
    tx.commit().await.context("committing the copy")?;
    Ok(position)
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
    if stored_lanes(api, media).await?.is_some() {
        return Err(StepError::invalid_state(format!(
            "the copy into {temp_table} has not copied every row yet: finish it before its primary key"
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
