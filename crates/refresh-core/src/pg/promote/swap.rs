//! Step 9: swap the temp table in, in one transaction. Each stage is one function; a test
//! hook runs after each ([`PromotionStage`]) so tests can prove a failure anywhere changes
//! nothing.
//!
//! Foreign keys of other tables that reference the live table are re-created `NOT VALID` by
//! default ([`ForeignKeyCheck::Later`]): a catalog change, so the transaction holds its locks
//! for as long as the renames take, not for a scan of each referencing table. Their orphans
//! are deleted and the keys validated afterwards (`validate::validate_foreign_keys`, the
//! worker's `validate_foreign_keys` job); new rows are checked from the moment of promotion.

use super::reapply::temp_name;
use super::record::{self, PromotionRecord};
use super::sequences::move_sequences;
use super::shape::{
    check_supported, owned_sequences, referencing_foreign_keys, table_comment_and_grants,
    table_shape, OwnedSequence, ReferencingForeignKey, TableShape,
};
use super::statement::{exec, Tables};
use super::validate::orphans_sql;
use crate::error::{StepError, StepResult};
use crate::media::MediaType;
use crate::pg::error::PgResultExt;
use crate::pg::sql::quote_ident;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio_postgres::{Client, Transaction};

/// How long promotion waits for the API's queries to release the tables before giving up
/// (a transient error, retried): queued behind it, every new API query would wait too.
pub const DEFAULT_PROMOTION_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// When the foreign keys referencing the live table are checked against the new rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForeignKeyCheck {
    /// Re-created `NOT VALID` inside the transaction; orphans deleted and keys validated
    /// afterwards by `validate_foreign_keys`.
    #[default]
    Later,
    /// Orphans deleted and keys re-created (validated) inside the transaction: a scan of every
    /// referencing table under the promotion's locks. For small referencing tables only.
    InTransaction,
}

/// Tunables of the promotion transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotionOptions {
    pub lock_timeout: Duration,
    pub foreign_keys: ForeignKeyCheck,
    /// Written in the transaction (the point of no return); a refresh always gives one.
    pub record: Option<PromotionRecord>,
}

impl Default for PromotionOptions {
    fn default() -> Self {
        PromotionOptions {
            lock_timeout: DEFAULT_PROMOTION_LOCK_TIMEOUT,
            foreign_keys: ForeignKeyCheck::default(),
            record: None,
        }
    }
}

/// Points in the promotion transaction where a test can inject a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromotionStage {
    Locked,
    ForeignKeysDropped,
    LiveTableDropped,
    Renamed,
    SequencesMoved,
    ForeignKeysRestored,
}

/// The `promote_table` step's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionReport {
    pub promoted: bool,
    pub foreign_keys_repointed: usize,
    /// Re-created `NOT VALID`: the `validate_foreign_keys` job has work to do when > 0.
    pub foreign_keys_not_valid: usize,
    /// Rows deleted inside the transaction (only with [`ForeignKeyCheck::InTransaction`];
    /// otherwise the validation job deletes and reports them).
    pub orphans_deleted: u64,
    pub foreign_keys: Vec<ReferencingForeignKey>,
    pub rows: i64,
}

/// Swaps the temp table in (step 9), in one transaction.
pub async fn promote_table(
    client: &mut Client,
    media: MediaType,
) -> Result<PromotionReport, StepError> {
    promote_table_with(client, media, &PromotionOptions::default()).await
}

pub async fn promote_table_with(
    client: &mut Client,
    media: MediaType,
    options: &PromotionOptions,
) -> Result<PromotionReport, StepError> {
    promote_table_with_hook(client, media, options, &mut |_| Ok(())).await
}

/// [`promote_table_with`] with a callback at each [`PromotionStage`]; an error from it aborts
/// the transaction. Exists so tests can prove a failure midway changes nothing.
#[doc(hidden)]
pub async fn promote_table_with_hook(
    client: &mut Client,
    media: MediaType,
    options: &PromotionOptions,
    hook: &mut (dyn FnMut(PromotionStage) -> Result<(), StepError> + Send),
) -> Result<PromotionReport, StepError> {
    let tables = Tables::of(media);
    let tx = client
        .transaction()
        .await
        .context("starting the promotion transaction")?;
    set_timeouts(&tx, options).await?;
    let mut plan = lock_and_inspect(&tx, &tables).await?;
    hook(PromotionStage::Locked)?;
    drop_foreign_keys(&tx, &tables, &mut plan.foreign_keys, options.foreign_keys).await?;
    hook(PromotionStage::ForeignKeysDropped)?;
    drop_live_table(&tx, &tables, &plan.sequences).await?;
    hook(PromotionStage::LiveTableDropped)?;
    rename_temp_table(&tx, &tables, &plan.live, &plan.carried_over).await?;
    hook(PromotionStage::Renamed)?;
    move_sequences(&tx, &tables, &plan.sequences, &plan.temp_sequences).await?;
    hook(PromotionStage::SequencesMoved)?;
    restore_foreign_keys(&tx, &mut plan.foreign_keys, options.foreign_keys).await?;
    hook(PromotionStage::ForeignKeysRestored)?;
    let rows = check_promoted(&tx, &tables, &plan.live).await?;
    if let Some(record) = &options.record {
        record::write(&tx, media, record).await?;
    }
    tx.commit().await.context("committing the promotion")?;

    let (live_table, temp_table) = (tables.live, tables.temp);
    let foreign_keys = plan.foreign_keys;
    let orphans_deleted = foreign_keys.iter().map(|fk| fk.orphans_deleted).sum();
    let foreign_keys_not_valid = foreign_keys.iter().filter(|fk| !fk.validated).count();
    tracing::info!(
        table = live_table,
        rows,
        orphans_deleted,
        foreign_keys_not_valid,
        "promoted {temp_table} to {live_table}"
    );
    Ok(PromotionReport {
        promoted: true,
        foreign_keys_repointed: foreign_keys.len(),
        foreign_keys_not_valid,
        orphans_deleted,
        foreign_keys,
        rows,
    })
}

/// What the swap works from, read under the lock.
struct Plan {
    live: TableShape,
    foreign_keys: Vec<ReferencingForeignKey>,
    sequences: Vec<OwnedSequence>,
    temp_sequences: Vec<OwnedSequence>,
    /// `COMMENT` / `GRANT` statements restoring the live table's comment and privileges.
    carried_over: Vec<String>,
}

async fn set_timeouts(tx: &Transaction<'_>, options: &PromotionOptions) -> StepResult<()> {
    exec(
        tx,
        "setting the promotion's lock timeout",
        &format!(
            "SET LOCAL lock_timeout = {}",
            options.lock_timeout.as_millis().max(1)
        ),
    )
    .await?;
    // Deferred foreign-key checks must not be queued behind the ALTER TABLEs.
    exec(
        tx,
        "making constraints immediate",
        "SET CONSTRAINTS ALL IMMEDIATE",
    )
    .await?;
    Ok(())
}

/// Locks both tables and those referencing the live one, then reads (again, under the lock,
/// where nothing can change them) what the swap needs, and refuses a temp table that does
/// not carry the live table's indexes and constraints.
async fn lock_and_inspect(tx: &Transaction<'_>, tables: &Tables) -> StepResult<Plan> {
    let (live_table, temp_table) = (tables.live, tables.temp);
    let (live, temp) = match (
        table_shape(tx, live_table).await?,
        table_shape(tx, temp_table).await?,
    ) {
        (Some(live), Some(temp)) => (live, temp),
        (None, _) => {
            return Err(StepError::invalid_state(format!(
                "live table {live_table} does not exist"
            )))
        }
        (_, None) => {
            return Err(StepError::invalid_state(format!(
                "temp table {temp_table} does not exist: nothing to promote"
            )))
        }
    };
    let foreign_keys = referencing_foreign_keys(tx, live_table).await?;
    let mut lock_order: Vec<String> = vec![tables.live_sql.clone(), tables.temp_sql.clone()];
    lock_order.extend(foreign_keys.iter().map(|fk| fk.table.clone()));
    lock_order.dedup();
    exec(
        tx,
        &format!("locking {live_table}, {temp_table} and the tables referencing {live_table}"),
        &format!(
            "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            lock_order.join(", ")
        ),
    )
    .await?;
    // Read again under the lock: nothing can change them from here on.
    let live = table_shape(tx, live_table).await?.unwrap_or(live);
    let temp = table_shape(tx, temp_table).await?.unwrap_or(temp);
    check_supported(&live, live_table)?;
    verify_ready(&live, &temp, live_table, temp_table)?;
    Ok(Plan {
        foreign_keys: referencing_foreign_keys(tx, live_table).await?,
        sequences: owned_sequences(tx, live_table).await?,
        temp_sequences: owned_sequences(tx, temp_table).await?,
        carried_over: table_comment_and_grants(tx, live_table).await?,
        live,
    })
}

/// Drops each foreign key referencing the live table; with [`ForeignKeyCheck::InTransaction`]
/// also deletes the rows that would reference nothing in the new table, counting them in
/// `orphans_deleted`.
async fn drop_foreign_keys(
    tx: &Transaction<'_>,
    tables: &Tables,
    foreign_keys: &mut [ReferencingForeignKey],
    check: ForeignKeyCheck,
) -> StepResult<()> {
    for fk in foreign_keys {
        exec(
            tx,
            &format!("dropping foreign key {} on {}", fk.name, fk.table),
            &format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                fk.table,
                quote_ident(&fk.name)
            ),
        )
        .await?;
        if check == ForeignKeyCheck::Later {
            continue;
        }
        let deleted = exec(
            tx,
            &format!(
                "deleting rows of {} that reference no row of the new {}",
                fk.table, tables.live
            ),
            &orphans_sql(fk, &tables.temp_sql),
        )
        .await?;
        fk.orphans_deleted = deleted;
        tracing::info!(table = %fk.table, foreign_key = %fk.name, deleted, "deleted orphaned rows");
    }
    Ok(())
}

/// Drops the live table, after detaching its serial sequences, which belong to its column
/// and would go with it.
async fn drop_live_table(
    tx: &Transaction<'_>,
    tables: &Tables,
    sequences: &[OwnedSequence],
) -> StepResult<()> {
    let live_table = tables.live;
    for seq in sequences.iter().filter(|s| !s.identity) {
        exec(
            tx,
            &format!("detaching sequence {} from {live_table}", seq.sequence_name),
            &format!("ALTER SEQUENCE {} OWNED BY NONE", seq.sequence_sql),
        )
        .await?;
    }
    exec(
        tx,
        &format!("dropping the old {live_table}"),
        &format!("DROP TABLE {}", tables.live_sql),
    )
    .await?;
    Ok(())
}

/// Renames the temp table and its indexes to the live names, and gives it the live table's
/// grants and comment.
async fn rename_temp_table(
    tx: &Transaction<'_>,
    tables: &Tables,
    live: &TableShape,
    carried_over: &[String],
) -> StepResult<()> {
    let (live_table, temp_table) = (tables.live, tables.temp);
    exec(
        tx,
        &format!("renaming {temp_table} to {live_table}"),
        &format!(
            "ALTER TABLE {} RENAME TO {}",
            tables.temp_sql, tables.live_sql
        ),
    )
    .await?;
    for index in live.indexes.iter().filter(|i| i.valid) {
        let temp_index = temp_name(&index.name);
        exec(
            tx,
            &format!("renaming index {temp_index} to {}", index.name),
            &format!(
                "ALTER INDEX {} RENAME TO {}",
                quote_ident(&temp_index),
                quote_ident(&index.name)
            ),
        )
        .await?;
    }
    // The API may read as another role: without the old grants it would be locked out.
    // The comment replaces the copy's bookkeeping comment on the temp table.
    for statement in carried_over {
        exec(
            tx,
            &format!("restoring grants and comment of {live_table}"),
            statement,
        )
        .await?;
    }
    Ok(())
}

/// Re-creates the foreign keys dropped before the swap; they now reference the new table.
/// `NOT VALID` with [`ForeignKeyCheck::Later`]: enforced for new rows at once, existing rows
/// checked by the validation afterwards.
async fn restore_foreign_keys(
    tx: &Transaction<'_>,
    foreign_keys: &mut [ReferencingForeignKey],
    check: ForeignKeyCheck,
) -> StepResult<()> {
    for fk in foreign_keys {
        let definition = fk.definition_without_not_valid();
        let not_valid = match check {
            ForeignKeyCheck::Later => " NOT VALID",
            ForeignKeyCheck::InTransaction => "",
        };
        exec(
            tx,
            &format!("re-creating foreign key {} on {}", fk.name, fk.table),
            &format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {definition}{not_valid}",
                fk.table,
                quote_ident(&fk.name),
            ),
        )
        .await?;
        fk.validated = check == ForeignKeyCheck::InTransaction;
    }
    Ok(())
}

/// Last line of defence: the promoted table must look exactly like the old live one.
/// Returns its row count.
async fn check_promoted(
    tx: &Transaction<'_>,
    tables: &Tables,
    live: &TableShape,
) -> StepResult<i64> {
    let live_table = tables.live;
    let promoted = table_shape(tx, live_table).await?.ok_or_else(|| {
        StepError::invalid_state(format!("{live_table} vanished during promotion"))
    })?;
    if promoted.comparable() != live.comparable() {
        return Err(StepError::invalid_state(format!(
            "after the swap {live_table} does not have the indexes and constraints it had before; rolled back"
        )));
    }
    let row = tx
        .query_one(&format!("SELECT count(*) FROM {}", tables.live_sql), &[])
        .await
        .with_context(|| format!("counting rows of the new {live_table}"))?;
    Ok(row.get(0))
}

/// The temp table must carry every index (under its temp name) and constraint of the live
/// table, and nothing else.
fn verify_ready(
    live: &TableShape,
    temp: &TableShape,
    live_table: &str,
    temp_table: &str,
) -> Result<(), StepError> {
    let mut missing = Vec::new();
    let mut expected_temp_indexes = BTreeSet::new();
    for li in live.indexes.iter().filter(|i| i.valid) {
        let wanted = temp_name(&li.name);
        match temp.index(&wanted) {
            Some(t) if t.valid && t.signature() == li.signature() => {}
            Some(_) => missing.push(format!("index {wanted} (differs from {})", li.name)),
            None => missing.push(format!("index {wanted} (for {})", li.name)),
        }
        expected_temp_indexes.insert(wanted);
    }
    for lc in &live.constraints {
        match temp.constraint(&lc.name) {
            Some(tc)
                if tc.definition == lc.definition && tc.constraint_type == lc.constraint_type => {}
            _ => missing.push(format!("constraint {} {}", lc.name, lc.definition)),
        }
    }
    let extra: Vec<&str> = temp
        .indexes
        .iter()
        .map(|t| t.name.as_str())
        .filter(|name| !expected_temp_indexes.contains(*name))
        .chain(
            temp.constraints
                .iter()
                .map(|c| c.name.as_str())
                .filter(|name| live.constraint(name).is_none()),
        )
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("it lacks {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        problems.push(format!(
            "it has {} that {live_table} does not",
            extra.join(", ")
        ));
    }
    Err(StepError::invalid_state(format!(
        "refusing to promote {temp_table}: {} (run reapply_constraints first); nothing was changed",
        problems.join("; ")
    )))
}
