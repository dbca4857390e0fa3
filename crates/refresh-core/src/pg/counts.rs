//! Row counts of the live and temp tables (for logs, reports and the drop guard's sanity).

use crate::error::StepError;
use crate::media::MediaType;
use crate::pg::error::PgResultExt;
use crate::pg::sql::quote_ident;
use std::collections::BTreeMap;
use tokio_postgres::GenericClient;

/// Which of a media type's tables to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaTable {
    Live,
    Temp,
}

impl MediaTable {
    pub fn name(self, media: MediaType) -> &'static str {
        match self {
            MediaTable::Live => media.table(),
            MediaTable::Temp => media.temp_table(),
        }
    }
}

/// Key under which rows without a `source` are counted.
pub const NO_SOURCE: &str = "(none)";

pub async fn table_exists(
    client: &impl GenericClient,
    media: MediaType,
    which: MediaTable,
) -> Result<bool, StepError> {
    let table = which.name(media);
    client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&quote_ident(table)])
        .await
        .map(|row| row.get(0))
        .with_context(|| format!("looking up table {table}"))
}

/// Exact row count (`count(*)`: a full scan, meant for reports, not hot paths).
pub async fn row_count(
    client: &impl GenericClient,
    media: MediaType,
    which: MediaTable,
) -> Result<u64, StepError> {
    let table = which.name(media);
    let row = client
        .query_one(&format!("SELECT count(*) FROM {}", quote_ident(table)), &[])
        .await
        .with_context(|| format!("counting rows of {table}"))?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

/// Rows per `source`, every source (not a top-N).
pub async fn rows_by_source(
    client: &impl GenericClient,
    media: MediaType,
    which: MediaTable,
) -> Result<BTreeMap<String, u64>, StepError> {
    let table = which.name(media);
    let rows = client
        .query(
            &format!(
                "SELECT coalesce(source::text, $1), count(*) FROM {} GROUP BY 1 ORDER BY 1",
                quote_ident(table)
            ),
            &[&NO_SOURCE],
        )
        .await
        .with_context(|| format!("counting rows of {table} by source"))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            (
                row.get::<_, String>(0),
                u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
            )
        })
        .collect())
}

/// Smallest and largest `id` of a table; `None` when it is empty. A missing table is an
/// `InvalidState` (the reindex has nothing to read: the copy did not run or was cleaned up).
pub async fn id_span(
    client: &impl GenericClient,
    media: MediaType,
    which: MediaTable,
) -> Result<Option<(i64, i64)>, StepError> {
    let table = which.name(media);
    if !table_exists(client, media, which).await? {
        return Err(StepError::invalid_state(format!(
            "table {table} does not exist: run the copy first (or start without skip_copy)"
        )));
    }
    let row = client
        .query_one(
            &format!(
                "SELECT min(id)::bigint, max(id)::bigint FROM {}",
                quote_ident(table)
            ),
            &[],
        )
        .await
        .with_context(|| format!("reading the id span of {table}"))?;
    let (min, max): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
    Ok(min.zip(max))
}

/// Drops the temp table (and the id sequence and lanes table the copy made for it). Idempotent; never
/// touches the live table.
pub async fn drop_temp_table(
    client: &impl GenericClient,
    media: MediaType,
) -> Result<bool, StepError> {
    let table = MediaTable::Temp.name(media);
    let existed = table_exists(client, media, MediaTable::Temp).await?;
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {} CASCADE; DROP SEQUENCE IF EXISTS {}; DROP TABLE IF EXISTS {}",
            quote_ident(table),
            quote_ident(crate::pg::copy::temp_sequence_name(media)),
            quote_ident(&crate::pg::copy::lanes_table_name(media))
        ))
        .await
        .with_context(|| format!("dropping {table}"))?;
    Ok(existed)
}
