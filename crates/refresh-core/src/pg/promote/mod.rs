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
//!
//! - `shape`: reading a table's indexes, constraints, referencing foreign keys, owned
//!   sequences, comment and grants.
//! - `reapply`: step 8, building the live shape on the temp table under temp names (index
//!   builds in parallel on the worker).
//! - `swap`: step 9, the promotion transaction, one function per stage (`sequences`: the
//!   stage that carries the live table's sequences over).
//! - `validate`: after step 9, the referencing foreign keys promotion re-created `NOT VALID`.

mod reapply;
mod record;
mod sequences;
mod shape;
mod statement;
mod swap;
mod validate;

pub use reapply::{
    reapply_constraints, reapply_constraints_on, reapply_constraints_until, temp_name,
    ReappliedItem, ReapplyAction, ReapplyOptions, ReapplyReport, DEFAULT_REAPPLY_PARALLELISM,
};
pub use record::{table_promoted_by, PromotionRecord};
pub use shape::{table_shape, ConstraintInfo, IndexInfo, ReferencingForeignKey, TableShape};
pub use swap::{
    promote_table, promote_table_with, promote_table_with_hook, ForeignKeyCheck, PromotionOptions,
    PromotionReport, PromotionStage, DEFAULT_PROMOTION_LOCK_TIMEOUT,
};
pub use validate::{validate_foreign_keys, ForeignKeyOutcome, ForeignKeyValidationReport};
