//! Reading a table's shape from the catalog: its indexes and constraints, the foreign keys of
//! other tables that reference it, the sequences it owns, its comment and grants.

use crate::error::{StepError, StepResult};
use crate::pg::error::PgResultExt;
use crate::pg::sql::quote_ident;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio_postgres::{GenericClient, Row};

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
    pub(super) fn signature(&self) -> (&str, bool, Option<&str>, bool, bool) {
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
    pub(super) fn index(&self, name: &str) -> Option<&IndexInfo> {
        self.indexes.iter().find(|i| i.name == name)
    }

    pub(super) fn constraint(&self, name: &str) -> Option<&ConstraintInfo> {
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

/// Runs a catalog query whose one parameter, `$1`, is `table` as `to_regclass` reads it.
async fn catalog_rows(
    client: &impl GenericClient,
    sql: &str,
    table: &str,
    what: &str,
) -> StepResult<Vec<Row>> {
    client
        .query(sql, &[&quote_ident(table)])
        .await
        .context(what)
}

/// Reads a table's shape; `None` when the table does not exist.
pub async fn table_shape(
    client: &impl GenericClient,
    table: &str,
) -> Result<Option<TableShape>, StepError> {
    let exists = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&quote_ident(table)])
        .await
        .with_context(|| format!("looking up table {table}"))?;
    if !exists.get::<_, bool>(0) {
        return Ok(None);
    }
    let index_rows = catalog_rows(
        client,
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
        table,
        &format!("reading indexes of {table}"),
    )
    .await?;
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
    let constraints = catalog_rows(
        client,
        "SELECT conname::text, contype::text, pg_get_constraintdef(oid), confrelid = conrelid
           FROM pg_constraint
          WHERE conrelid = to_regclass($1) AND contype NOT IN ('p', 'u', 'x')
          ORDER BY conname",
        table,
        &format!("reading constraints of {table}"),
    )
    .await?
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

/// Refuses a live table with constraints promotion cannot carry over: exclusion
/// constraints, self-referencing foreign keys, anything but check and foreign keys.
pub(super) fn check_supported(live: &TableShape, table: &str) -> Result<(), StepError> {
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

/// A foreign key in another table that references the live table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferencingForeignKey {
    /// The referencing table as SQL (quoted and qualified as the server prints it).
    pub table: String,
    pub name: String,
    pub definition: String,
    /// The key columns, quoted.
    #[serde(skip)]
    pub(super) columns: Vec<String>,
    /// The live table's columns they reference, quoted.
    #[serde(skip)]
    pub(super) referenced_columns: Vec<String>,
    pub orphans_deleted: u64,
    /// `pg_constraint.convalidated`: false for a key re-created `NOT VALID` and not yet
    /// validated.
    pub validated: bool,
}

impl ReferencingForeignKey {
    /// The definition as `ADD CONSTRAINT` takes it, without the ` NOT VALID` the server
    /// prints for a key not yet validated.
    pub(super) fn definition_without_not_valid(&self) -> &str {
        self.definition
            .strip_suffix(" NOT VALID")
            .unwrap_or(&self.definition)
    }
}

pub(super) async fn referencing_foreign_keys(
    client: &impl GenericClient,
    table: &str,
) -> Result<Vec<ReferencingForeignKey>, StepError> {
    let rows = catalog_rows(
        client,
        "SELECT c.conrelid::regclass::text, c.conname::text, pg_get_constraintdef(c.oid),
                array(SELECT quote_ident(a.attname) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
                        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.ord),
                array(SELECT quote_ident(a.attname) FROM unnest(c.confkey) WITH ORDINALITY k(attnum, ord)
                        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.ord),
                c.convalidated
           FROM pg_constraint c
          WHERE c.contype = 'f' AND c.confrelid = to_regclass($1) AND c.conrelid <> c.confrelid
          ORDER BY 1, 2",
        table,
        &format!("reading foreign keys that reference {table}"),
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| ReferencingForeignKey {
            table: row.get(0),
            name: row.get(1),
            definition: row.get(2),
            columns: row.get(3),
            referenced_columns: row.get(4),
            orphans_deleted: 0,
            validated: row.get(5),
        })
        .collect())
}

/// A sequence the live table owns (serial default or identity column).
pub(super) struct OwnedSequence {
    pub(super) column: String,
    /// The sequence as SQL, quoted and qualified as the server prints it.
    pub(super) sequence_sql: String,
    pub(super) sequence_name: String,
    pub(super) identity: bool,
    /// `a` (always) or `d` (by default) for identity columns.
    pub(super) identity_kind: String,
    pub(super) default_expression: Option<String>,
}

pub(super) async fn owned_sequences(
    client: &impl GenericClient,
    table: &str,
) -> Result<Vec<OwnedSequence>, StepError> {
    let rows = catalog_rows(
        client,
        "SELECT a.attname::text, s.oid::regclass::text, s.relname::text, d.deptype = 'i',
                a.attidentity::text, pg_get_expr(ad.adbin, ad.adrelid)
           FROM pg_depend d
           JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
           JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
           LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
          WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
            AND d.refobjid = to_regclass($1) AND d.deptype IN ('a', 'i')
          ORDER BY 1, 2",
        table,
        &format!("reading sequences owned by {table}"),
    )
    .await?;
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
pub(super) async fn table_comment_and_grants(
    client: &impl GenericClient,
    table: &str,
) -> Result<Vec<String>, StepError> {
    let rows = catalog_rows(
        client,
        "SELECT format('COMMENT ON TABLE %s IS %L', $1::text, obj_description(to_regclass($1), 'pg_class'))
         UNION ALL
         SELECT format('GRANT %s ON TABLE %s TO %s%s', a.privilege_type, $1::text,
                       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                       CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
           FROM pg_class c, aclexplode(c.relacl) a
          WHERE c.oid = to_regclass($1)",
        table,
        &format!("reading the comment and grants of {table}"),
    )
    .await?;
    Ok(rows.into_iter().map(|row| row.get(0)).collect())
}
