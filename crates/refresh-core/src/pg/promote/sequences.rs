//! The promotion stage that carries the live table's sequences (serial defaults and identity
//! columns) over to the promoted table, so new rows keep getting ids from them.

use super::shape::OwnedSequence;
use super::statement::{exec, Tables};
use crate::error::StepResult;
use crate::pg::error::PgResultExt;
use crate::pg::sql::quote_ident;
use tokio_postgres::Transaction;

/// Gives each of the old live table's sequences to the promoted table's column, drops the
/// copy's own sequences they replace, and moves each past the promoted rows.
pub(super) async fn move_sequences(
    tx: &Transaction<'_>,
    tables: &Tables,
    sequences: &[OwnedSequence],
    temp_sequences: &[OwnedSequence],
) -> StepResult<()> {
    for seq in sequences {
        // The copy's own sequence for this column (if any) is replaced by the live one.
        let leftovers: Vec<&OwnedSequence> = temp_sequences
            .iter()
            .filter(|t| t.column == seq.column)
            .collect();
        if seq.identity {
            attach_identity(tx, tables, seq, &leftovers).await?;
        } else {
            attach_serial(tx, tables, seq).await?;
        }
        for leftover in leftovers
            .iter()
            .filter(|t| !t.identity && t.sequence_sql != seq.sequence_sql)
        {
            exec(
                tx,
                &format!("dropping the copy's sequence {}", leftover.sequence_name),
                &format!("DROP SEQUENCE {}", leftover.sequence_sql),
            )
            .await?;
        }
        // New rows must get ids above every copied one.
        let sequence_sql = if seq.identity {
            quote_ident(&seq.sequence_name)
        } else {
            seq.sequence_sql.clone()
        };
        let column = quote_ident(&seq.column);
        tx.query_one(
            &format!(
                "SELECT setval($1::text::regclass, coalesce(max({column}), 1), max({column}) IS NOT NULL) FROM {}",
                tables.live_sql
            ),
            &[&sequence_sql],
        )
        .await
        .with_context(|| format!("moving sequence {} past the new rows", seq.sequence_name))?;
    }
    Ok(())
}

/// An identity column: takes over the copy's identity sequence under the live name, or
/// becomes an identity column with a new sequence of that name.
async fn attach_identity(
    tx: &Transaction<'_>,
    tables: &Tables,
    seq: &OwnedSequence,
    leftovers: &[&OwnedSequence],
) -> StepResult<()> {
    let (live_table, live_sql) = (tables.live, &tables.live_sql);
    let column = quote_ident(&seq.column);
    let kind = if seq.identity_kind == "a" {
        "ALWAYS"
    } else {
        "BY DEFAULT"
    };
    if let Some(existing) = leftovers.iter().find(|t| t.identity) {
        exec(
            tx,
            &format!("renaming identity sequence {}", existing.sequence_name),
            &format!(
                "ALTER SEQUENCE {} RENAME TO {}",
                existing.sequence_sql,
                quote_ident(&seq.sequence_name)
            ),
        )
        .await?;
        exec(
            tx,
            &format!("setting identity of {live_table}.{}", seq.column),
            &format!("ALTER TABLE {live_sql} ALTER COLUMN {column} SET GENERATED {kind}"),
        )
        .await?;
    } else {
        exec(
            tx,
            &format!("making {live_table}.{} an identity column", seq.column),
            &format!(
                "ALTER TABLE {live_sql} ALTER COLUMN {column} DROP DEFAULT, \
                 ALTER COLUMN {column} ADD GENERATED {kind} AS IDENTITY (SEQUENCE NAME {})",
                quote_ident(&seq.sequence_name)
            ),
        )
        .await?;
    }
    Ok(())
}

/// A serial column: the live sequence (detached before the drop) is owned by the promoted
/// column again, and the column's default restored.
async fn attach_serial(
    tx: &Transaction<'_>,
    tables: &Tables,
    seq: &OwnedSequence,
) -> StepResult<()> {
    let (live_table, live_sql) = (tables.live, &tables.live_sql);
    let column = quote_ident(&seq.column);
    exec(
        tx,
        &format!(
            "attaching sequence {} to {live_table}.{}",
            seq.sequence_name, seq.column
        ),
        &format!(
            "ALTER SEQUENCE {} OWNED BY {live_sql}.{column}",
            seq.sequence_sql
        ),
    )
    .await?;
    if let Some(default) = &seq.default_expression {
        exec(
            tx,
            &format!("restoring the default of {live_table}.{}", seq.column),
            &format!("ALTER TABLE {live_sql} ALTER COLUMN {column} SET DEFAULT {default}"),
        )
        .await?;
    }
    Ok(())
}
