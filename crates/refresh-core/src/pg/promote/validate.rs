//! After step 9: the foreign keys promotion re-created `NOT VALID` on the tables that
//! reference the live table. For each: delete the rows that reference nothing in the new
//! table, then `ALTER TABLE … VALIDATE CONSTRAINT` (a scan of the referencing table under a
//! SHARE UPDATE EXCLUSIVE lock, which neither reads nor writes wait for).
//!
//! Runs after promotion and never undoes it: a key that fails is reported with its error and
//! stays `NOT VALID` (still enforced for new rows); the others are validated regardless.

use super::shape::{referencing_foreign_keys, ReferencingForeignKey};
use crate::error::StepError;
use crate::media::MediaType;
use crate::pg::job::{run_statement, CancellationToken, JobProgress};
use crate::pg::sql::quote_ident;
use serde::{Deserialize, Serialize};
use std::time::Instant;
use tokio_postgres::Client;

/// What happened to one referencing foreign key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKeyOutcome {
    /// The referencing table as SQL.
    pub table: String,
    pub name: String,
    /// It was valid before this run: nothing was done.
    pub already_valid: bool,
    pub orphans_deleted: u64,
    pub validated: bool,
    /// Why it is not validated: the PostgreSQL error (`pg::error`).
    pub error: Option<String>,
    pub seconds: f64,
}

/// The `validate_foreign_keys` job's output.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ForeignKeyValidationReport {
    pub foreign_keys: Vec<ForeignKeyOutcome>,
    /// Keys valid now (validated by this run or before it).
    pub validated: usize,
    /// Keys that stay `NOT VALID`; their `error` says why.
    pub failed: usize,
    pub orphans_deleted: u64,
}

impl ForeignKeyValidationReport {
    /// One line naming each key that failed, for a task's `error`; `None` when none did.
    pub fn failure_summary(&self) -> Option<String> {
        if self.failed == 0 {
            return None;
        }
        let failures: Vec<String> = self
            .foreign_keys
            .iter()
            .filter(|fk| !fk.validated)
            .map(|fk| {
                format!(
                    "{} on {}: {}",
                    fk.name,
                    fk.table,
                    fk.error.as_deref().unwrap_or("not validated")
                )
            })
            .collect();
        Some(format!(
            "{} of {} foreign key(s) referencing the promoted table failed validation and stay NOT VALID (the promotion stands): {}",
            self.failed,
            self.foreign_keys.len(),
            failures.join("; ")
        ))
    }
}

/// `DELETE` of the rows of `fk`'s table that reference no row of `referenced_sql` (MATCH
/// SIMPLE: a row with any NULL key column references nothing and is kept).
pub(super) fn orphans_sql(fk: &ReferencingForeignKey, referenced_sql: &str) -> String {
    let not_null: Vec<String> = fk
        .columns
        .iter()
        .map(|c| format!("r.{c} IS NOT NULL"))
        .collect();
    let joins: Vec<String> = fk
        .columns
        .iter()
        .zip(&fk.referenced_columns)
        .map(|(c, rc)| format!("t.{rc} = r.{c}"))
        .collect();
    format!(
        "DELETE FROM {} r WHERE {} AND NOT EXISTS (SELECT 1 FROM {referenced_sql} t WHERE {})",
        fk.table,
        not_null.join(" AND "),
        joins.join(" AND ")
    )
}

/// Deletes the orphans of, and validates, every foreign key referencing `media`'s live table
/// that is not valid yet. Returns an error only when the keys cannot be read or the job was
/// cancelled; each key's own failure is in the report.
pub async fn validate_foreign_keys(
    client: &Client,
    media: MediaType,
    progress: &JobProgress,
    cancel: &CancellationToken,
) -> Result<ForeignKeyValidationReport, StepError> {
    let live_table = media.table();
    let live_sql = quote_ident(live_table);
    let foreign_keys = referencing_foreign_keys(client, live_table).await?;
    progress.plan(2 * foreign_keys.iter().filter(|fk| !fk.validated).count());
    let mut report = ForeignKeyValidationReport::default();
    for fk in &foreign_keys {
        let started = Instant::now();
        let mut outcome = ForeignKeyOutcome {
            table: fk.table.clone(),
            name: fk.name.clone(),
            already_valid: fk.validated,
            orphans_deleted: 0,
            validated: fk.validated,
            error: None,
            seconds: 0.0,
        };
        if !fk.validated {
            match validate_one(client, fk, live_table, &live_sql, progress, cancel).await {
                Ok(deleted) => {
                    outcome.orphans_deleted = deleted;
                    outcome.validated = true;
                }
                // A stopped job is not a key's failure: stop here, the rerun continues.
                Err(e) if cancel.is_cancelled() => return Err(e),
                Err(e) => {
                    tracing::error!(table = %fk.table, foreign_key = %fk.name, error = %e, "foreign key not validated");
                    outcome.error = Some(e.message);
                }
            }
        }
        outcome.seconds = (started.elapsed().as_secs_f64() * 10.0).round() / 10.0;
        report.orphans_deleted += outcome.orphans_deleted;
        if outcome.validated {
            report.validated += 1;
        } else {
            report.failed += 1;
        }
        report.foreign_keys.push(outcome);
    }
    Ok(report)
}

/// Orphans out, then `VALIDATE`; returns the orphans deleted. Each statement commits on its
/// own: new rows are already checked by the `NOT VALID` key, so no new orphan can appear
/// between the two.
async fn validate_one(
    client: &Client,
    fk: &ReferencingForeignKey,
    live_table: &str,
    live_sql: &str,
    progress: &JobProgress,
    cancel: &CancellationToken,
) -> Result<u64, StepError> {
    let deleted = run_statement(
        client,
        &format!(
            "deleting rows of {} that reference no row of {live_table} ({})",
            fk.table, fk.name
        ),
        &orphans_sql(fk, live_sql),
        progress,
        cancel,
    )
    .await?;
    run_statement(
        client,
        &format!("validating foreign key {} on {}", fk.name, fk.table),
        &format!(
            "ALTER TABLE {} VALIDATE CONSTRAINT {}",
            fk.table,
            quote_ident(&fk.name)
        ),
        progress,
        cancel,
    )
    .await?;
    tracing::info!(table = %fk.table, foreign_key = %fk.name, orphans_deleted = deleted, "foreign key validated");
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_each_failed_key() {
        let ok = ForeignKeyOutcome {
            table: "api_imagedecision".into(),
            name: "fk_a".into(),
            already_valid: false,
            orphans_deleted: 2,
            validated: true,
            error: None,
            seconds: 0.1,
        };
        let mut report = ForeignKeyValidationReport {
            foreign_keys: vec![ok.clone()],
            validated: 1,
            failed: 0,
            orphans_deleted: 2,
        };
        assert_eq!(report.failure_summary(), None);
        report.foreign_keys.push(ForeignKeyOutcome {
            name: "fk_b".into(),
            validated: false,
            error: Some("PostgreSQL error 23503: …".into()),
            ..ok
        });
        report.failed = 1;
        let summary = report.failure_summary().unwrap();
        assert!(summary.starts_with("1 of 2 foreign key(s)"), "{summary}");
        assert!(
            summary.contains("fk_b on api_imagedecision: PostgreSQL error 23503"),
            "{summary}"
        );
        assert!(!summary.contains("fk_a"), "{summary}");
    }
}
