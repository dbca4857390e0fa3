//! Row counts of the live and temp tables (for logs, reports and the drop guard's sanity).

use crate::error::StepError;
use crate::media::MediaType;
use crate::pg::promote::{db_error, quote_ident};
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
        .map_err(|e| db_error(&format!("looking up table {table}"), e))
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
        .map_err(|e| db_error(&format!("counting rows of {table}"), e))?;
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
        .map_err(|e| db_error(&format!("counting rows of {table} by source"), e))?;
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
