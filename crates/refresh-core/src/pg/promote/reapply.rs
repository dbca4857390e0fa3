//! Step 8: give the temp table the live table's indexes (under [`temp_name`]s) and
//! constraints. Idempotent, and interruptible between index builds.

use super::shape::{check_supported, table_shape, IndexInfo, TableShape};
use crate::error::{StepError, StepResult};
use crate::media::MediaType;
use crate::pg::error::{pg_error, PgResultExt};
use crate::pg::sql::quote_ident;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Instant;
use tokio_postgres::Client;

/// PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes.
const MAX_IDENTIFIER_BYTES: usize = 63;
const TEMP_NAME_SUFFIX: &str = "_tmp";

/// The deterministic name a live index (or index-backed constraint) has on the temp table:
/// `<name>_tmp`, or, when that would pass 63 bytes, a truncated name plus a hash of the full
/// one so that two long names sharing a prefix stay distinct.
pub fn temp_name(live_name: &str) -> String {
    let simple = format!("{live_name}{TEMP_NAME_SUFFIX}");
    if simple.len() <= MAX_IDENTIFIER_BYTES {
        return simple;
    }
    let hash = format!("_{:08x}", fnv1a32(live_name.as_bytes()));
    let room = MAX_IDENTIFIER_BYTES - hash.len() - TEMP_NAME_SUFFIX.len();
    let mut cut = room.min(live_name.len());
    while !live_name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{hash}{TEMP_NAME_SUFFIX}", &live_name[..cut])
}

/// FNV-1a: tiny and stable across Rust releases (std's hasher is not).
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |hash, b| {
        (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// What reapplying did to one index or constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReapplyAction {
    /// Already there from an earlier run.
    Present,
    /// An equivalent one (e.g. the copy's primary key) was renamed to the temp name.
    Renamed {
        from: String,
    },
    Created,
    /// Was there with a different definition: dropped and created again.
    Replaced,
}

impl ReapplyAction {
    /// Built now: `Replaced` when one of the name was dropped first, else `Created`.
    fn built(replaced: bool) -> Self {
        if replaced {
            ReapplyAction::Replaced
        } else {
            ReapplyAction::Created
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReappliedItem {
    pub live_name: String,
    pub temp_name: String,
    pub action: ReapplyAction,
}

/// The `reapply_constraints` step's output.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReapplyReport {
    pub indexes: Vec<ReappliedItem>,
    pub constraints: Vec<ReappliedItem>,
    /// Indexes / constraints on the temp table the live table does not have.
    pub dropped: Vec<String>,
    /// False when the deadline passed first: run again to continue (every step is idempotent).
    pub done: bool,
    /// Planner statistics were collected for the temp table.
    pub analyzed: bool,
}

/// Creates the live table's indexes and constraints on the temp table (step 8).
pub async fn reapply_constraints(
    client: &Client,
    media: MediaType,
) -> Result<ReapplyReport, StepError> {
    reapply_constraints_until(client, media, None).await
}

/// Like [`reapply_constraints`], but stops starting new index builds after `deadline`
/// (report `done: false`), so a step with a time limit can loop.
pub async fn reapply_constraints_until(
    client: &Client,
    media: MediaType,
    deadline: Option<Instant>,
) -> Result<ReapplyReport, StepError> {
    let live_table = media.table();
    let temp_table = media.temp_table();
    let live = table_shape(client, live_table).await?.ok_or_else(|| {
        StepError::invalid_state(format!("live table {live_table} does not exist"))
    })?;
    let temp = table_shape(client, temp_table).await?.ok_or_else(|| {
        StepError::invalid_state(format!(
            "temp table {temp_table} does not exist: run the copy step (or a refresh without skip_copy) first"
        ))
    })?;
    check_supported(&live, live_table)?;
    let target = Target {
        client,
        live_table,
        temp_table,
        temp_sql: quote_ident(temp_table),
    };
    let mut report = ReapplyReport::default();
    // A build from an earlier call whose Lambda timed out keeps running in its backend and
    // commits when done: wait for it (done: false) instead of racing it for the same name.
    let builds = index_builds_in_progress(client, temp_table).await?;
    if builds > 0 {
        tracing::info!(
            builds,
            table = temp_table,
            "an index build on the temp table is still running; call again later"
        );
        return Ok(report);
    }

    let live_indexes: Vec<&IndexInfo> = live.indexes.iter().filter(|i| i.valid).collect();
    let matches = match_indexes(&live_indexes, &temp);
    target
        .drop_unmatched_indexes(&temp, &matches, &mut report)
        .await?;
    // Renames first (instant), then the builds, which a deadline may interrupt.
    let to_build = target
        .rename_matched_indexes(&live_indexes, &matches, &mut report)
        .await?;
    if !target
        .build_indexes(to_build, deadline, &mut report)
        .await?
    {
        return Ok(report);
    }
    target.add_constraints(&live, &temp, &mut report).await?;
    target
        .drop_extra_constraints(&live, &temp, &mut report)
        .await?;
    // A freshly loaded table has no planner statistics until autovacuum gets to it; the
    // API's first queries after promotion would be planned blind. Statistics follow the
    // table through the rename.
    target
        .exec(
            format!("ANALYZE {}", target.temp_sql),
            format!("collecting planner statistics for {temp_table}"),
        )
        .await?;
    report.analyzed = true;
    report.done = true;
    Ok(report)
}

/// Matches each live index to a temp index: by temp name first, then any equivalent one
/// (the copy step's primary key) no other live index will claim by name.
fn match_indexes<'t>(
    live_indexes: &[&IndexInfo],
    temp: &'t TableShape,
) -> Vec<Option<&'t IndexInfo>> {
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    let mut matches = Vec::new();
    for li in live_indexes {
        let wanted = temp_name(&li.name);
        let found = temp
            .index(&wanted)
            .filter(|t| t.valid && t.signature() == li.signature())
            .or_else(|| {
                temp.indexes.iter().find(|t| {
                    t.valid
                        && !claimed.contains(t.name.as_str())
                        && t.signature() == li.signature()
                        && !live_indexes
                            .iter()
                            .any(|other| temp_name(&other.name) == t.name)
                })
            });
        if let Some(t) = found {
            claimed.insert(&t.name);
        }
        matches.push(found);
    }
    matches
}

/// The temp table being given the live table's shape.
struct Target<'a> {
    client: &'a Client,
    live_table: &'a str,
    temp_table: &'a str,
    temp_sql: String,
}

impl Target<'_> {
    async fn exec(&self, sql: String, what: String) -> StepResult<()> {
        tracing::info!(statement = %sql, "{what}");
        self.client.batch_execute(&sql).await.context(&what)
    }

    async fn drop_constraint(&self, name: &str, what: String) -> StepResult<()> {
        let sql = format!(
            "ALTER TABLE {} DROP CONSTRAINT {}",
            self.temp_sql,
            quote_ident(name)
        );
        self.exec(sql, what).await
    }

    /// Drops the temp indexes no live index matched.
    async fn drop_unmatched_indexes(
        &self,
        temp: &TableShape,
        matches: &[Option<&IndexInfo>],
        report: &mut ReapplyReport,
    ) -> StepResult<()> {
        let claimed: BTreeSet<&str> = matches.iter().flatten().map(|t| t.name.as_str()).collect();
        for t in &temp.indexes {
            if claimed.contains(t.name.as_str()) {
                continue;
            }
            let what = format!(
                "dropping index {} on {}, which {} does not have",
                t.name, self.temp_table, self.live_table
            );
            match &t.constraint_type {
                Some(_) => self.drop_constraint(&t.name, what).await?,
                None => {
                    self.exec(format!("DROP INDEX {}", quote_ident(&t.name)), what)
                        .await?
                }
            }
            report.dropped.push(t.name.clone());
        }
        Ok(())
    }

    /// Renames matched indexes to their temp names; returns the live indexes still to build,
    /// with their temp names.
    async fn rename_matched_indexes<'l>(
        &self,
        live_indexes: &[&'l IndexInfo],
        matches: &[Option<&IndexInfo>],
        report: &mut ReapplyReport,
    ) -> StepResult<Vec<(&'l IndexInfo, String)>> {
        let mut to_build = Vec::new();
        for (li, found) in live_indexes.iter().zip(matches) {
            let wanted = temp_name(&li.name);
            let action = match found {
                Some(t) if t.name == wanted => ReapplyAction::Present,
                Some(t) => {
                    let sql = format!(
                        "ALTER INDEX {} RENAME TO {}",
                        quote_ident(&t.name),
                        quote_ident(&wanted)
                    );
                    self.exec(sql, format!("renaming index {} to {wanted}", t.name))
                        .await?;
                    ReapplyAction::Renamed {
                        from: t.name.clone(),
                    }
                }
                None => {
                    to_build.push((*li, wanted));
                    continue;
                }
            };
            report.indexes.push(ReappliedItem {
                live_name: li.name.clone(),
                temp_name: wanted,
                action,
            });
        }
        Ok(to_build)
    }

    /// Builds the missing indexes; false when `deadline` passed before all were started.
    async fn build_indexes(
        &self,
        to_build: Vec<(&IndexInfo, String)>,
        deadline: Option<Instant>,
        report: &mut ReapplyReport,
    ) -> StepResult<bool> {
        for (li, wanted) in to_build {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            ensure_name_free(self.client, &wanted, self.temp_table).await?;
            create_index_like(self.client, li, &wanted, self.temp_table).await?;
            let action = ReapplyAction::built(report.dropped.contains(&wanted));
            report.indexes.push(ReappliedItem {
                live_name: li.name.clone(),
                temp_name: wanted,
                action,
            });
        }
        Ok(true)
    }

    /// Adds the live table's check and foreign-key constraints under their own names,
    /// replacing any with another definition.
    async fn add_constraints(
        &self,
        live: &TableShape,
        temp: &TableShape,
        report: &mut ReapplyReport,
    ) -> StepResult<()> {
        let temp_table = self.temp_table;
        for lc in &live.constraints {
            let action = match temp.constraint(&lc.name) {
                Some(tc)
                    if tc.constraint_type == lc.constraint_type
                        && tc.definition == lc.definition =>
                {
                    ReapplyAction::Present
                }
                existing => {
                    if existing.is_some() {
                        let what =
                            format!("dropping outdated constraint {} on {temp_table}", lc.name);
                        self.drop_constraint(&lc.name, what).await?;
                    }
                    let sql = format!(
                        "ALTER TABLE {} ADD CONSTRAINT {} {}",
                        self.temp_sql,
                        quote_ident(&lc.name),
                        lc.definition
                    );
                    self.exec(
                        sql,
                        format!("adding constraint {} to {temp_table}", lc.name),
                    )
                    .await?;
                    ReapplyAction::built(existing.is_some())
                }
            };
            report.constraints.push(ReappliedItem {
                live_name: lc.name.clone(),
                temp_name: lc.name.clone(),
                action,
            });
        }
        Ok(())
    }

    /// Drops the temp table's constraints the live table does not have.
    async fn drop_extra_constraints(
        &self,
        live: &TableShape,
        temp: &TableShape,
        report: &mut ReapplyReport,
    ) -> StepResult<()> {
        for tc in &temp.constraints {
            if live.constraint(&tc.name).is_none() {
                let what = format!(
                    "dropping constraint {} on {}, which {} does not have",
                    tc.name, self.temp_table, self.live_table
                );
                self.drop_constraint(&tc.name, what).await?;
                report.dropped.push(tc.name.clone());
            }
        }
        Ok(())
    }
}

/// Index builds running on `table` in other sessions (visible to the same role).
async fn index_builds_in_progress(client: &Client, table: &str) -> Result<i64, StepError> {
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_progress_create_index
              WHERE relid = to_regclass($1) AND pid <> pg_backend_pid()",
            &[&quote_ident(table)],
        )
        .await
        .map(|row| row.get(0))
        .with_context(|| format!("checking for index builds on {table}"))
}

/// A temp name already used by a relation elsewhere (not on the temp table) is a clash an
/// operator must resolve; report it instead of failing inside CREATE INDEX.
async fn ensure_name_free(client: &Client, name: &str, temp_table: &str) -> Result<(), StepError> {
    let row = client
        .query_opt(
            "SELECT c.relkind::text, coalesce(t.relname::text, '')
               FROM pg_class c
               LEFT JOIN pg_index x ON x.indexrelid = c.oid
               LEFT JOIN pg_class t ON t.oid = x.indrelid
              WHERE c.oid = to_regclass($1)",
            &[&quote_ident(name)],
        )
        .await
        .with_context(|| format!("looking up relation {name}"))?;
    match row {
        None => Ok(()),
        Some(row) => {
            let owner: String = row.get(1);
            Err(StepError::invalid_state(format!(
                "cannot build {name} on {temp_table}: a relation of that name already exists{}",
                if owner.is_empty() {
                    String::new()
                } else {
                    format!(" (an index on {owner})")
                }
            )))
        }
    }
}

async fn create_index_like(
    client: &Client,
    live: &IndexInfo,
    name: &str,
    temp_table: &str,
) -> Result<(), StepError> {
    let temp_sql = quote_ident(temp_table);
    let name_sql = quote_ident(name);
    let deferral = match (live.deferrable, live.deferred) {
        (true, true) => " DEFERRABLE INITIALLY DEFERRED",
        (true, false) => " DEFERRABLE",
        _ => "",
    };
    let statements = match live.constraint_type.as_deref() {
        // Build the index once, then let the constraint adopt it.
        Some(kind @ ("p" | "u")) => vec![
            format!("CREATE UNIQUE INDEX {name_sql} ON {temp_sql} USING {}", live.body),
            format!(
                "ALTER TABLE {temp_sql} ADD CONSTRAINT {name_sql} {} USING INDEX {name_sql}{deferral}",
                if kind == "p" { "PRIMARY KEY" } else { "UNIQUE" }
            ),
        ],
        Some(other) => {
            return Err(StepError::invalid_state(format!(
                "constraint {} of type {other:?} cannot be rebuilt by promotion",
                live.name
            )))
        }
        None => vec![format!(
            "CREATE {}INDEX {name_sql} ON {temp_sql} USING {}",
            if live.unique { "UNIQUE " } else { "" },
            live.body
        )],
    };
    let started = Instant::now();
    // One transaction: an index without its constraint is never left behind.
    let sql = format!("BEGIN; {}; COMMIT;", statements.join("; "));
    if let Err(e) = client.batch_execute(&sql).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(pg_error(
            &format!("creating {name} on {temp_table} (like {})", live.name),
            e,
        ));
    }
    tracing::info!(index = name, like = %live.name, seconds = started.elapsed().as_secs_f64(), "created index");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn temp_names_fit_and_are_deterministic() {
        assert_eq!(temp_name("image_pkey"), "image_pkey_tmp");
        let long_a = format!("{}a", "x".repeat(62));
        let long_b = format!("{}b", "x".repeat(62));
        assert!(temp_name(&long_a).len() <= 63);
        assert_ne!(temp_name(&long_a), temp_name(&long_b));
        assert_eq!(temp_name(&long_a), temp_name(&long_a));
    }

    proptest! {
        #[test]
        fn temp_names_never_exceed_the_identifier_limit(name in "\\PC{1,63}") {
            prop_assume!(name.len() <= 63);
            let t = temp_name(&name);
            prop_assert!(t.len() <= 63);
            prop_assert!(t.ends_with("_tmp"));
            prop_assert_ne!(t, name);
        }
    }
}
