//! What the promotion's stages share: the two tables' names and running one statement.

use crate::error::StepResult;
use crate::media::MediaType;
use crate::pg::error::PgResultExt;
use crate::pg::sql::quote_ident;
use tokio_postgres::Transaction;

/// The live and temp table of a media type, by name and as SQL.
pub(super) struct Tables {
    pub(super) live: &'static str,
    pub(super) temp: &'static str,
    pub(super) live_sql: String,
    pub(super) temp_sql: String,
}

impl Tables {
    pub(super) fn of(media: MediaType) -> Self {
        Tables {
            live: media.table(),
            temp: media.temp_table(),
            live_sql: quote_ident(media.table()),
            temp_sql: quote_ident(media.temp_table()),
        }
    }
}

/// Runs one statement of the promotion; returns the rows it touched.
pub(super) async fn exec(tx: &Transaction<'_>, what: &str, sql: &str) -> StepResult<u64> {
    tracing::debug!(statement = %sql, "promotion");
    tx.execute(sql, &[]).await.context(what)
}
