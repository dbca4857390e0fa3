//! Step 3 as a standalone pass: re-filter the tags of an existing `temp_import_<media>` (used
//! with `skip_copy`). The copy itself filters inside its `SELECT`; this pass is for a table
//! that was copied before, or under another configuration.
//!
//! Set-based: one `UPDATE` per id-range batch, several batches in flight on a connection
//! pool. Only rows whose filtered tags differ (as jsonb values, so `0.90` and `0.9` are the
//! same number) are written, so a second pass changes nothing and leaves no dead rows.

use crate::error::{ErrorKind, StepError, StepResult};
use crate::media::MediaType;
use crate::pg::error::{pg_error, PgResultExt};
use crate::pg::sql::quote_ident;
use crate::ranges::{batches, IdRange};
use crate::tags::{TagFilterConfig, TagFilterSql};
use futures::stream::{self, TryStreamExt};
use tokio_postgres::types::ToSql;

pub const DEFAULT_REFILTER_BATCH: u64 = 100_000;
pub const DEFAULT_REFILTER_PARALLELISM: usize = 2;

#[derive(Debug, Clone)]
pub struct RefilterRequest {
    pub media: MediaType,
    pub tag_filter: TagFilterConfig,
    /// Ids per `UPDATE`.
    pub batch_size: u64,
    /// `UPDATE`s in flight at once (the pool should have at least this many connections).
    pub parallelism: usize,
}

impl RefilterRequest {
    pub fn new(media: MediaType, tag_filter: TagFilterConfig) -> Self {
        RefilterRequest {
            media,
            tag_filter,
            batch_size: DEFAULT_REFILTER_BATCH,
            parallelism: DEFAULT_REFILTER_PARALLELISM,
        }
    }
}

/// The `UPDATE` of one batch: `$1`, `$2` the id range, `$3..$6` the filter configuration.
pub fn refilter_sql(media: MediaType) -> String {
    let expr = TagFilterSql::expression("\"tags\"", 3);
    format!(
        "UPDATE {temp} SET \"tags\" = {expr} \
         WHERE \"id\" BETWEEN $1::bigint AND $2::bigint AND \"tags\" IS DISTINCT FROM {expr}",
        temp = quote_ident(media.temp_table())
    )
}

fn pool_error(e: deadpool_postgres::PoolError) -> StepError {
    match e {
        deadpool_postgres::PoolError::Backend(pg) => pg_error("getting a database connection", pg),
        other => StepError::new(
            ErrorKind::TransientDatabase,
            format!("getting a database connection: {other}"),
        ),
    }
}

/// Re-filters every row of the temp table; returns the number of rows changed.
pub async fn refilter_tags(
    pool: &deadpool_postgres::Pool,
    request: &RefilterRequest,
) -> StepResult<u64> {
    request.tag_filter.validate()?;
    let media = request.media;
    let client = pool.get().await.map_err(pool_error)?;
    let row = client
        .query_one(
            &format!(
                "SELECT min(\"id\")::bigint, max(\"id\")::bigint FROM {}",
                quote_ident(media.temp_table())
            ),
            &[],
        )
        .await
        .context("reading the temp table's id span")?;
    drop(client);
    let (Some(min), Some(max)) = (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
    else {
        return Ok(0);
    };
    let sql = refilter_sql(media);
    let tags = request.tag_filter.sql_params();
    let ranges = batches(
        IdRange {
            start_id: min,
            end_id: max,
        },
        request.batch_size,
    )?;
    let changed = stream::iter(ranges.map(Ok::<IdRange, StepError>))
        .map_ok(|range| {
            let (sql, tags) = (&sql, &tags);
            async move {
                let client = pool.get().await.map_err(pool_error)?;
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![&range.start_id, &range.end_id];
                params.extend(tags.params());
                let statement = client
                    .prepare_cached(sql)
                    .await
                    .context("preparing the tag filter")?;
                let n = client
                    .execute(&statement, &params)
                    .await
                    .context("filtering tags of an id range")?;
                tracing::debug!(
                    start_id = range.start_id,
                    end_id = range.end_id,
                    rows_changed = n,
                    "tags filtered"
                );
                Ok::<u64, StepError>(n)
            }
        })
        .try_buffer_unordered(request.parallelism.max(1))
        .try_fold(0u64, |total, n| async move { Ok(total + n) })
        .await?;
    tracing::info!(media = %media, rows_changed = changed, "tag re-filter finished");
    Ok(changed)
}
