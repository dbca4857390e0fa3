//! The promotion record: one row per promoted table, written inside the promotion
//! transaction, so it exists exactly when the swap committed. It marks the point of no
//! return: a run whose record exists must roll forward (its new indices are what the promoted
//! table's rows are in), and cleanup must keep its indices even while no alias points at them.

use crate::error::StepResult;
use crate::media::MediaType;
use crate::pg::error::PgResultExt;
use serde::{Deserialize, Serialize};
use tokio_postgres::{GenericClient, Transaction};

/// Which run promoted a table: its new indices name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionRecord {
    pub new_index: String,
    pub new_filtered_index: String,
}

/// Kept apart from the API's own tables.
const CREATE: &str = "CREATE SCHEMA IF NOT EXISTS data_refresh;
     CREATE TABLE IF NOT EXISTS data_refresh.promotions (
         new_index text PRIMARY KEY,
         media_type text NOT NULL,
         new_filtered_index text NOT NULL,
         promoted_at timestamptz NOT NULL DEFAULT now())";

/// Serialises the creation of the record table (an arbitrary, fixed advisory lock key).
const CREATE_LOCK: i64 = 0x6461_7461_7265_6672;

pub(super) async fn write(
    tx: &Transaction<'_>,
    media: MediaType,
    record: &PromotionRecord,
) -> StepResult<()> {
    // Image and audio promote at the same time: CREATE ... IF NOT EXISTS is not safe against
    // a concurrent creator (23505 on pg_namespace), so creators take turns.
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock({CREATE_LOCK}); {CREATE}"
    ))
    .await
    .context("creating the promotion record table")?;
    // A retried promotion of the same run finds its row already there.
    tx.execute(
        "INSERT INTO data_refresh.promotions (new_index, media_type, new_filtered_index)
         VALUES ($1, $2, $3) ON CONFLICT (new_index) DO NOTHING",
        &[
            &record.new_index,
            &media.to_string(),
            &record.new_filtered_index,
        ],
    )
    .await
    .context("recording the promotion")?;
    Ok(())
}

/// Whether the run whose new index is `new_index` promoted its table (committed).
pub async fn table_promoted_by(client: &impl GenericClient, new_index: &str) -> StepResult<bool> {
    let row = client
        .query_one(
            "SELECT to_regclass('data_refresh.promotions') IS NOT NULL",
            &[],
        )
        .await
        .context("looking for the promotion record table")?;
    if !row.get::<_, bool>(0) {
        return Ok(false);
    }
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM data_refresh.promotions WHERE new_index = $1)",
            &[&new_index],
        )
        .await
        .context("reading the promotion record")?;
    Ok(row.get(0))
}
