//! Step 3 as a standalone pass: re-filter the tags of an existing `temp_import_<media>` (used
//! with `skip_copy`). The copy itself filters inside its `SELECT`; this pass is for a table
//! that was copied before, or under another configuration.
//!
//! Set-based: one `UPDATE` per id-range batch, several batches in flight on a connection
//! pool. Only rows whose filtered tags differ (as jsonb values, so `0.90` and `0.9` are the
//! same number) are written, so a second pass changes nothing and leaves no dead rows.
//! Each row's filter is evaluated once, and without JIT compilation (`BENCHMARKS.md`).

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
/// The filter runs once per row in a fenced subquery (`OFFSET 0` keeps the planner from
/// pulling it up, which would copy the expression into both `SET` and `WHERE`).
pub fn refilter_sql(media: MediaType) -> String {
    let expr = TagFilterSql::expression("\"tags\"", 3);
    format!(
        "UPDATE {temp} AS t SET \"tags\" = f.filtered \
         FROM (SELECT \"id\", {expr} AS filtered FROM {temp} \
               WHERE \"id\" BETWEEN $1::bigint AND $2::bigint OFFSET 0) AS f \
         WHERE t.\"id\" = f.\"id\" AND t.\"id\" BETWEEN $1::bigint AND $2::bigint \
           AND t.\"tags\" IS DISTINCT FROM f.filtered",
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
                let mut client = pool.get().await.map_err(pool_error)?;
                let mut params: Vec<&(dyn ToSql + Sync)> = vec![&range.start_id, &range.end_id];
                params.extend(tags.params());
                let statement = client
                    .prepare_cached(sql)
                    .await
                    .context("preparing the tag filter")?;
                let tx = client
                    .transaction()
                    .await
                    .context("starting a tag filter batch")?;
                // The planner overestimates the per-row subquery, so PostgreSQL would JIT-compile
                // every batch, which costs more than it saves; SET LOCAL leaves the pooled
                // connection as it was.
                tx.batch_execute("SET LOCAL jit = off")
                    .await
                    .context("turning JIT off for a tag filter batch")?;
                let n = tx
                    .execute(&statement, &params)
                    .await
                    .context("filtering tags of an id range")?;
                tx.commit().await.context("committing a tag filter batch")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_is_filtered_once_per_batch() {
        let sql = refilter_sql(MediaType::Image);
        assert_eq!(sql.matches("jsonb_array_elements").count(), 1, "{sql}");
        assert!(sql.contains("OFFSET 0"), "{sql}");
        assert!(sql.contains("UPDATE \"temp_import_image\" AS t"), "{sql}");
    }
}
