//! Steps 8 and 9: give the temp table the live table's indexes and constraints, then swap it
//! in — in one transaction, so a failure anywhere leaves the live table, its data and its
//! constraints exactly as they were (the replaced system ran these as separate statements).
//!
//! Names: every index of the live table (and the constraint it backs, which always shares
//! its name) is built on the temp table as [`temp_name`]`(live name)`, because index names
//! are unique per schema. Check and foreign-key constraints are per table, so the temp table
//! carries them under their live names. Promotion renames each temp name back.
//!
//! Identifiers here come from `MediaType` or from the catalog (`pg_class`, `pg_constraint`),
//! and are always quoted; no input value is spliced into SQL.

use crate::error::{ErrorKind, StepError};
use crate::media::MediaType;
use crate::pg::connect::is_transient;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient};

/// PostgreSQL's identifier limit (NAMEDATALEN - 1), in bytes.
const MAX_IDENTIFIER_BYTES: usize = 63;
const TEMP_NAME_SUFFIX: &str = "_tmp";
/// How long promotion waits for the API's queries to release the tables before giving up
/// (a transient error, retried): queued behind it, every new API query would wait too.
pub const DEFAULT_PROMOTION_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Tunables of the promotion transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromotionOptions {
    pub lock_timeout: Duration,
}

impl Default for PromotionOptions {
    fn default() -> Self {
        PromotionOptions {
            lock_timeout: DEFAULT_PROMOTION_LOCK_TIMEOUT,
        }
    }
}

pub use crate::pg::copy::quote_ident;

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

/// Maps a database error to a step error: transient as `pg::connect` decides, plus lock
/// timeouts (promotion gives up waiting for the API's queries and is retried). The server's
/// detail is kept: it names the dependent object or clashing key an operator must look at.
pub fn db_error(context: &str, error: tokio_postgres::Error) -> StepError {
    let transient = is_transient(&error) || error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE);
    let kind = if transient {
        ErrorKind::TransientDatabase
    } else {
        ErrorKind::Internal
    };
    let message = match error.as_db_error() {
        Some(db) => {
            let mut message = format!(
                "{context}: {} (SQLSTATE {})",
                db.message(),
                db.code().code()
            );
            if let Some(detail) = db.detail() {
                message.push_str(&format!("; {detail}"));
            }
            message
        }
        None => format!("{context}: {}", StepError::from(error).message),
    };
    StepError::new(kind, message)
}

/// One index as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexInfo {
    pub name: String,
    /// `pg_get_indexdef` as the server prints it.
    pub definition: String,
    /// Everything after `USING `: access method, columns, INCLUDE, WITH, WHERE. Identical
    /// for the same index on two tables with the same columns.
    pub body: String,
    pub unique: bool,
    /// The constraint this index implements (`p`, `u` or `x`), which has the index's name.
    pub constraint_type: Option<String>,
    pub deferrable: bool,
    pub deferred: bool,
    pub valid: bool,
}

impl IndexInfo {
    /// What must match for a temp-table index to stand in for a live one.
    fn signature(&self) -> (&str, bool, Option<&str>, bool, bool) {
        (
            &self.body,
            self.unique,
            self.constraint_type.as_deref(),
            self.deferrable,
            self.deferred,
        )
    }
}

/// A constraint that is not implemented by an index (check, foreign key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConstraintInfo {
    pub name: String,
    pub constraint_type: String,
    /// `pg_get_constraintdef`, e.g. `CHECK ((width > 0))`.
    pub definition: String,
    pub self_referencing: bool,
}

/// The indexes and constraints of one table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TableShape {
    pub indexes: Vec<IndexInfo>,
    pub constraints: Vec<ConstraintInfo>,
}

impl TableShape {
    fn index(&self, name: &str) -> Option<&IndexInfo> {
        self.indexes.iter().find(|i| i.name == name)
    }

    fn constraint(&self, name: &str) -> Option<&ConstraintInfo> {
        self.constraints.iter().find(|c| c.name == name)
    }

    /// Index names with their table-independent definitions, and constraint names with
    /// their definitions: equal for two tables that look the same to a query planner.
    pub fn comparable(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let indexes = self
            .indexes
            .iter()
            .filter(|i| i.valid)
            .map(|i| {
                let kind = format!(
                    "{}{} {:?} {} {}",
                    if i.unique { "UNIQUE " } else { "" },
                    i.body,
                    i.constraint_type,
                    i.deferrable,
                    i.deferred
                );
                (i.name.clone(), kind)
            })
            .collect();
        let constraints = self
            .constraints
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    format!("{} {}", c.constraint_type, c.definition),
                )
            })
            .collect();
        (indexes, constraints)
    }
}

/// Reads a table's shape; `None` when the table does not exist.
pub async fn table_shape(
    client: &impl GenericClient,
    table: &str,
) -> Result<Option<TableShape>, StepError> {
    let quoted = quote_ident(table);
    let exists = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&quoted])
        .await
        .map_err(|e| db_error(&format!("looking up table {table}"), e))?;
    if !exists.get::<_, bool>(0) {
        return Ok(None);
    }
    let index_rows = client
        .query(
            "SELECT i.relname::text, pg_get_indexdef(i.oid),
                    'CREATE ' || CASE WHEN x.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '
                      || quote_ident(i.relname) || ' ON ' || quote_ident(n.nspname) || '.'
                      || quote_ident(t.relname) || ' USING ',
                    x.indisunique, x.indisvalid, c.contype::text,
                    coalesce(c.condeferrable, false), coalesce(c.condeferred, false)
               FROM pg_index x
               JOIN pg_class i ON i.oid = x.indexrelid
               JOIN pg_class t ON t.oid = x.indrelid
               JOIN pg_namespace n ON n.oid = t.relnamespace
               LEFT JOIN pg_constraint c
                 ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x')
              WHERE x.indrelid = to_regclass($1)
              ORDER BY i.relname",
            &[&quoted],
        )
        .await
        .map_err(|e| db_error(&format!("reading indexes of {table}"), e))?;
    let mut indexes = Vec::with_capacity(index_rows.len());
    for row in index_rows {
        let name: String = row.get(0);
        let definition: String = row.get(1);
        let prefix: String = row.get(2);
        let Some(body) = definition.strip_prefix(&prefix) else {
            return Err(StepError::invalid_state(format!(
                "index {name} on {table} has a definition this tool cannot rebuild: {definition}"
            )));
        };
        indexes.push(IndexInfo {
            body: body.to_string(),
            name,
            definition: definition.clone(),
            unique: row.get(3),
            valid: row.get(4),
            constraint_type: row.get(5),
            deferrable: row.get(6),
            deferred: row.get(7),
        });
    }
    let constraint_rows = client
        .query(
            "SELECT conname::text, contype::text, pg_get_constraintdef(oid), confrelid = conrelid
               FROM pg_constraint
              WHERE conrelid = to_regclass($1) AND contype NOT IN ('p', 'u', 'x')
              ORDER BY conname",
            &[&quoted],
        )
        .await
        .map_err(|e| db_error(&format!("reading constraints of {table}"), e))?;
    let constraints = constraint_rows
        .into_iter()
        .map(|row| ConstraintInfo {
            name: row.get(0),
            constraint_type: row.get(1),
            definition: row.get(2),
            self_referencing: row.get(3),
        })
        .collect();
    Ok(Some(TableShape {
        indexes,
        constraints,
    }))
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

fn check_supported(live: &TableShape, table: &str) -> Result<(), StepError> {
    if let Some(exclusion) = live
        .indexes
        .iter()
        .find(|i| i.constraint_type.as_deref() == Some("x"))
    {
        return Err(StepError::invalid_state(format!(
            "{table} has exclusion constraint {}, which promotion does not carry over",
            exclusion.name
        )));
    }
    for c in &live.constraints {
        match c.constraint_type.as_str() {
            "c" | "f" if !c.self_referencing => {}
            "f" => {
                return Err(StepError::invalid_state(format!(
                    "{table} has a self-referencing foreign key {}: promotion cannot re-point it",
                    c.name
                )))
            }
            other => {
                let name = &c.name;
                return Err(StepError::invalid_state(format!(
                    "{table} has constraint {name} of type {other:?}, which promotion cannot carry over"
                )));
            }
        }
    }
    Ok(())
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
    let temp_sql = quote_ident(temp_table);
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
    let exec = |sql: String, what: String| async move {
        tracing::info!(statement = %sql, "{what}");
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| db_error(&what, e))
    };

    // Match each live index to a temp index: by temp name first, then any equivalent one
    // (the copy step's primary key). Unmatched temp indexes are dropped.
    let live_indexes: Vec<&IndexInfo> = live.indexes.iter().filter(|i| i.valid).collect();
    let mut claimed: BTreeSet<&str> = BTreeSet::new();
    let mut matches: Vec<Option<&IndexInfo>> = Vec::new();
    for li in &live_indexes {
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
    for t in &temp.indexes {
        if claimed.contains(t.name.as_str()) {
            continue;
        }
        let sql = match &t.constraint_type {
            Some(_) => format!(
                "ALTER TABLE {temp_sql} DROP CONSTRAINT {}",
                quote_ident(&t.name)
            ),
            None => format!("DROP INDEX {}", quote_ident(&t.name)),
        };
        exec(
            sql,
            format!(
                "dropping index {} on {temp_table}, which {live_table} does not have",
                t.name
            ),
        )
        .await?;
        report.dropped.push(t.name.clone());
    }

    // Renames first (instant), then the builds, which a deadline may interrupt.
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
                exec(sql, format!("renaming index {} to {wanted}", t.name)).await?;
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
    for (li, wanted) in to_build {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(report);
        }
        ensure_name_free(client, &wanted, temp_table).await?;
        create_index_like(client, li, &wanted, temp_table).await?;
        let action = if report.dropped.contains(&wanted) {
            ReapplyAction::Replaced
        } else {
            ReapplyAction::Created
        };
        report.indexes.push(ReappliedItem {
            live_name: li.name.clone(),
            temp_name: wanted,
            action,
        });
    }

    for lc in &live.constraints {
        let action = match temp.constraint(&lc.name) {
            Some(tc)
                if tc.constraint_type == lc.constraint_type && tc.definition == lc.definition =>
            {
                ReapplyAction::Present
            }
            existing => {
                if existing.is_some() {
                    let sql = format!(
                        "ALTER TABLE {temp_sql} DROP CONSTRAINT {}",
                        quote_ident(&lc.name)
                    );
                    exec(
                        sql,
                        format!("dropping outdated constraint {} on {temp_table}", lc.name),
                    )
                    .await?;
                }
                let sql = format!(
                    "ALTER TABLE {temp_sql} ADD CONSTRAINT {} {}",
                    quote_ident(&lc.name),
                    lc.definition
                );
                exec(
                    sql,
                    format!("adding constraint {} to {temp_table}", lc.name),
                )
                .await?;
                if existing.is_some() {
                    ReapplyAction::Replaced
                } else {
                    ReapplyAction::Created
                }
            }
        };
        report.constraints.push(ReappliedItem {
            live_name: lc.name.clone(),
            temp_name: lc.name.clone(),
            action,
        });
    }
    for tc in &temp.constraints {
        if live.constraint(&tc.name).is_none() {
            let sql = format!(
                "ALTER TABLE {temp_sql} DROP CONSTRAINT {}",
                quote_ident(&tc.name)
            );
            exec(
                sql,
                format!(
                    "dropping constraint {} on {temp_table}, which {live_table} does not have",
                    tc.name
                ),
            )
            .await?;
            report.dropped.push(tc.name.clone());
        }
    }
    // A freshly loaded table has no planner statistics until autovacuum gets to it; the
    // API's first queries after promotion would be planned blind. Statistics follow the
    // table through the rename.
    exec(
        format!("ANALYZE {temp_sql}"),
        format!("collecting planner statistics for {temp_table}"),
    )
    .await?;
    report.analyzed = true;
    report.done = true;
    Ok(report)
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
        .map_err(|e| db_error(&format!("checking for index builds on {table}"), e))
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
        .map_err(|e| db_error(&format!("looking up relation {name}"), e))?;
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
        return Err(db_error(
            &format!("creating {name} on {temp_table} (like {})", live.name),
            e,
        ));
    }
    tracing::info!(index = name, like = %live.name, seconds = started.elapsed().as_secs_f64(), "created index");
    Ok(())
}

/// A foreign key in another table that references the live table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferencingForeignKey {
    /// The referencing table as SQL (quoted and qualified as the server prints it).
    pub table: String,
    pub name: String,
    pub definition: String,
    #[serde(skip)]
    columns: Vec<String>,
    #[serde(skip)]
    referenced_columns: Vec<String>,
    pub orphans_deleted: u64,
}

async fn referencing_foreign_keys(
    client: &impl GenericClient,
    table: &str,
) -> Result<Vec<ReferencingForeignKey>, StepError> {
    let rows = client
        .query(
            "SELECT c.conrelid::regclass::text, c.conname::text, pg_get_constraintdef(c.oid),
                    array(SELECT quote_ident(a.attname) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
                            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.ord),
                    array(SELECT quote_ident(a.attname) FROM unnest(c.confkey) WITH ORDINALITY k(attnum, ord)
                            JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.ord)
               FROM pg_constraint c
              WHERE c.contype = 'f' AND c.confrelid = to_regclass($1) AND c.conrelid <> c.confrelid
              ORDER BY 1, 2",
            &[&quote_ident(table)],
        )
        .await
        .map_err(|e| db_error(&format!("reading foreign keys that reference {table}"), e))?;
    Ok(rows
        .into_iter()
        .map(|row| ReferencingForeignKey {
            table: row.get(0),
            name: row.get(1),
            definition: row.get(2),
            columns: row.get(3),
            referenced_columns: row.get(4),
            orphans_deleted: 0,
        })
        .collect())
}

/// A sequence the live table owns (serial default or identity column).
struct OwnedSequence {
    column: String,
    /// The sequence as SQL, quoted and qualified as the server prints it.
    sequence_sql: String,
    sequence_name: String,
    identity: bool,
    /// `a` (always) or `d` (by default) for identity columns.
    identity_kind: String,
    default_expression: Option<String>,
}

async fn owned_sequences(
    client: &impl GenericClient,
    table: &str,
) -> Result<Vec<OwnedSequence>, StepError> {
    let rows = client
        .query(
            "SELECT a.attname::text, s.oid::regclass::text, s.relname::text, d.deptype = 'i',
                    a.attidentity::text, pg_get_expr(ad.adbin, ad.adrelid)
               FROM pg_depend d
               JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
               JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
               LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
              WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                AND d.refobjid = to_regclass($1) AND d.deptype IN ('a', 'i')
              ORDER BY 1, 2",
            &[&quote_ident(table)],
        )
        .await
        .map_err(|e| db_error(&format!("reading sequences owned by {table}"), e))?;
    Ok(rows
        .into_iter()
        .map(|row| OwnedSequence {
            column: row.get(0),
            sequence_sql: row.get(1),
            sequence_name: row.get(2),
            identity: row.get(3),
            identity_kind: row.get(4),
            default_expression: row.get(5),
        })
        .collect())
}

/// `COMMENT ON TABLE` and `GRANT` statements that give a new table the table-level comment
/// and privileges `table` has now, quoted by the server (`format` with `%I` / `%L`).
async fn table_comment_and_grants(
    client: &impl GenericClient,
    table: &str,
) -> Result<Vec<String>, StepError> {
    let quoted = quote_ident(table);
    let rows = client
        .query(
            "SELECT format('COMMENT ON TABLE %s IS %L', $1::text, obj_description(to_regclass($1), 'pg_class'))
             UNION ALL
             SELECT format('GRANT %s ON TABLE %s TO %s%s', a.privilege_type, $1::text,
                           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                           CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
               FROM pg_class c, aclexplode(c.relacl) a
              WHERE c.oid = to_regclass($1)",
            &[&quoted],
        )
        .await
        .map_err(|e| db_error(&format!("reading the comment and grants of {table}"), e))?;
    Ok(rows.into_iter().map(|row| row.get(0)).collect())
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
    let live_table = media.table();
    let temp_table = media.temp_table();
    let live_sql = quote_ident(live_table);
    let temp_sql = quote_ident(temp_table);

    let tx = client
        .transaction()
        .await
        .map_err(|e| db_error("starting the promotion transaction", e))?;
    macro_rules! exec {
        ($what:expr, $sql:expr) => {{
            let sql: String = $sql;
            tracing::debug!(statement = %sql, "promotion");
            tx.execute(sql.as_str(), &[]).await.map_err(|e| db_error(&$what, e))
        }};
    }

    exec!(
        "setting the promotion's lock timeout",
        format!(
            "SET LOCAL lock_timeout = {}",
            options.lock_timeout.as_millis().max(1)
        )
    )?;
    // Deferred foreign-key checks must not be queued behind the ALTER TABLEs.
    exec!(
        "making constraints immediate",
        "SET CONSTRAINTS ALL IMMEDIATE".to_string()
    )?;

    let (live, temp) = match (
        table_shape(&tx, live_table).await?,
        table_shape(&tx, temp_table).await?,
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
    let mut foreign_keys = referencing_foreign_keys(&tx, live_table).await?;
    let mut lock_order: Vec<String> = vec![live_sql.clone(), temp_sql.clone()];
    lock_order.extend(foreign_keys.iter().map(|fk| fk.table.clone()));
    lock_order.dedup();
    exec!(
        format!("locking {live_table}, {temp_table} and the tables referencing {live_table}"),
        format!(
            "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            lock_order.join(", ")
        )
    )?;
    // Read again under the lock: nothing can change them from here on.
    let live = table_shape(&tx, live_table).await?.unwrap_or(live);
    let temp = table_shape(&tx, temp_table).await?.unwrap_or(temp);
    check_supported(&live, live_table)?;
    verify_ready(&live, &temp, live_table, temp_table)?;
    foreign_keys = referencing_foreign_keys(&tx, live_table).await?;
    let sequences = owned_sequences(&tx, live_table).await?;
    let temp_sequences = owned_sequences(&tx, temp_table).await?;
    let carried_over = table_comment_and_grants(&tx, live_table).await?;
    hook(PromotionStage::Locked)?;

    for fk in &mut foreign_keys {
        exec!(
            format!("dropping foreign key {} on {}", fk.name, fk.table),
            format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                fk.table,
                quote_ident(&fk.name)
            )
        )?;
        // MATCH SIMPLE: a row with any NULL key column references nothing.
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
        let deleted = exec!(
            format!(
                "deleting rows of {} that reference no row of the new {live_table}",
                fk.table
            ),
            format!(
                "DELETE FROM {} r WHERE {} AND NOT EXISTS (SELECT 1 FROM {temp_sql} t WHERE {})",
                fk.table,
                not_null.join(" AND "),
                joins.join(" AND ")
            )
        )?;
        fk.orphans_deleted = deleted;
        tracing::info!(table = %fk.table, foreign_key = %fk.name, deleted, "deleted orphaned rows");
    }
    hook(PromotionStage::ForeignKeysDropped)?;

    // Serial sequences belong to the live table's column and would go with it.
    for seq in sequences.iter().filter(|s| !s.identity) {
        exec!(
            format!("detaching sequence {} from {live_table}", seq.sequence_name),
            format!("ALTER SEQUENCE {} OWNED BY NONE", seq.sequence_sql)
        )?;
    }
    exec!(
        format!("dropping the old {live_table}"),
        format!("DROP TABLE {live_sql}")
    )?;
    hook(PromotionStage::LiveTableDropped)?;

    exec!(
        format!("renaming {temp_table} to {live_table}"),
        format!("ALTER TABLE {temp_sql} RENAME TO {live_sql}")
    )?;
    for index in live.indexes.iter().filter(|i| i.valid) {
        exec!(
            format!(
                "renaming index {} to {}",
                temp_name(&index.name),
                index.name
            ),
            format!(
                "ALTER INDEX {} RENAME TO {}",
                quote_ident(&temp_name(&index.name)),
                quote_ident(&index.name)
            )
        )?;
    }
    // The API may read as another role: without the old grants it would be locked out.
    // The comment replaces the copy's bookkeeping comment on the temp table.
    for statement in &carried_over {
        exec!(
            format!("restoring grants and comment of {live_table}"),
            statement.clone()
        )?;
    }
    hook(PromotionStage::Renamed)?;

    for seq in &sequences {
        let column = quote_ident(&seq.column);
        // The copy's own sequence for this column (if any) is replaced by the live one.
        let leftovers: Vec<&OwnedSequence> = temp_sequences
            .iter()
            .filter(|t| t.column == seq.column)
            .collect();
        if seq.identity {
            let kind = if seq.identity_kind == "a" {
                "ALWAYS"
            } else {
                "BY DEFAULT"
            };
            if let Some(existing) = leftovers.iter().find(|t| t.identity) {
                exec!(
                    format!("renaming identity sequence {}", existing.sequence_name),
                    format!(
                        "ALTER SEQUENCE {} RENAME TO {}",
                        existing.sequence_sql,
                        quote_ident(&seq.sequence_name)
                    )
                )?;
                exec!(
                    format!("setting identity of {live_table}.{}", seq.column),
                    format!("ALTER TABLE {live_sql} ALTER COLUMN {column} SET GENERATED {kind}")
                )?;
            } else {
                exec!(
                    format!("making {live_table}.{} an identity column", seq.column),
                    format!(
                        "ALTER TABLE {live_sql} ALTER COLUMN {column} DROP DEFAULT, \
                         ALTER COLUMN {column} ADD GENERATED {kind} AS IDENTITY (SEQUENCE NAME {})",
                        quote_ident(&seq.sequence_name)
                    )
                )?;
            }
        } else {
            exec!(
                format!(
                    "attaching sequence {} to {live_table}.{}",
                    seq.sequence_name, seq.column
                ),
                format!(
                    "ALTER SEQUENCE {} OWNED BY {live_sql}.{column}",
                    seq.sequence_sql
                )
            )?;
            if let Some(default) = &seq.default_expression {
                exec!(
                    format!("restoring the default of {live_table}.{}", seq.column),
                    format!("ALTER TABLE {live_sql} ALTER COLUMN {column} SET DEFAULT {default}")
                )?;
            }
        }
        for leftover in leftovers
            .iter()
            .filter(|t| !t.identity && t.sequence_sql != seq.sequence_sql)
        {
            exec!(
                format!("dropping the copy's sequence {}", leftover.sequence_name),
                format!("DROP SEQUENCE {}", leftover.sequence_sql)
            )?;
        }
        // New rows must get ids above every copied one.
        let sequence_sql = if seq.identity {
            quote_ident(&seq.sequence_name)
        } else {
            seq.sequence_sql.clone()
        };
        tx.query_one(
            &format!(
                "SELECT setval($1::text::regclass, coalesce(max({column}), 1), max({column}) IS NOT NULL) FROM {live_sql}"
            ),
            &[&sequence_sql],
        )
        .await
        .map_err(|e| db_error(&format!("moving sequence {} past the new rows", seq.sequence_name), e))?;
    }
    hook(PromotionStage::SequencesMoved)?;

    for fk in &foreign_keys {
        exec!(
            format!("re-creating foreign key {} on {}", fk.name, fk.table),
            format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {}",
                fk.table,
                quote_ident(&fk.name),
                fk.definition
            )
        )?;
    }
    hook(PromotionStage::ForeignKeysRestored)?;

    // Last line of defence: the promoted table must look exactly like the old live one.
    let promoted = table_shape(&tx, live_table).await?.ok_or_else(|| {
        StepError::invalid_state(format!("{live_table} vanished during promotion"))
    })?;
    if promoted.comparable() != live.comparable() {
        return Err(StepError::invalid_state(format!(
            "after the swap {live_table} does not have the indexes and constraints it had before; rolled back"
        )));
    }
    let rows: i64 = tx
        .query_one(&format!("SELECT count(*) FROM {live_sql}"), &[])
        .await
        .map_err(|e| db_error(&format!("counting rows of the new {live_table}"), e))?
        .get(0);

    tx.commit()
        .await
        .map_err(|e| db_error("committing the promotion", e))?;
    let orphans_deleted = foreign_keys.iter().map(|fk| fk.orphans_deleted).sum();
    tracing::info!(
        table = live_table,
        rows,
        orphans_deleted,
        "promoted {temp_table} to {live_table}"
    );
    Ok(PromotionReport {
        promoted: true,
        foreign_keys_repointed: foreign_keys.len(),
        orphans_deleted,
        foreign_keys,
        rows,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test]
    async fn a_refused_connection_is_transient() {
        // A refused connection has no SQLSTATE; is_transient treats it as transient.
        let refused = tokio_postgres::connect(
            "host=127.0.0.1 port=1 user=x connect_timeout=2",
            tokio_postgres::NoTls,
        )
        .await
        .err()
        .unwrap();
        let err = db_error("promoting", refused);
        assert_eq!(err.kind, ErrorKind::TransientDatabase);
        assert!(err.message.starts_with("promoting: "), "{}", err.message);
    }

    #[test]
    fn temp_names_fit_and_are_deterministic() {
        assert_eq!(temp_name("image_pkey"), "image_pkey_tmp");
        let long_a = format!("{}a", "x".repeat(62));
        let long_b = format!("{}b", "x".repeat(62));
        assert!(temp_name(&long_a).len() <= 63);
        assert_ne!(temp_name(&long_a), temp_name(&long_b));
        assert_eq!(temp_name(&long_a), temp_name(&long_a));
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
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
