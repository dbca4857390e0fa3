//! The steps, one file each: its input and output shapes exactly as the state machines send
//! and read them (`statemachine/*.asl.json`), `parse` (the strict parse plus any check of the
//! input as a whole) and `handle` (the few lines that call `refresh_core`).
//!
//! [`Step`] is the registry: the one list of step names. The bootstrap picks a step by name;
//! `functions/tests/asl_contract.rs` checks every step against the definitions and
//! `tests/infra/test_template.py` against the template and `docs/ARCHITECTURE.md`, so a step
//! added here but forgotten elsewhere (or the reverse) fails a test.

pub mod params;

use crate::runtime::{invoke, StepFailure};
use crate::Context;
use refresh_core::error::{ErrorKind, StepError, StepResult};
use serde_json::Value;
use std::sync::Arc;

/// The environment variable naming the step a Lambda function runs (`copy_data`, …): every
/// function runs the same bootstrap, the template sets this per function.
pub const STEP_VAR: &str = "REFRESH_STEP";

/// Declares the step modules and the [`Step`] registry in one list: `module => Variant`.
/// The module name is the step's name (`REFRESH_STEP`), the variant its function's logical id
/// without `Function` (`CopyData` → `CopyDataFunction`, `${CopyDataFunctionArn}`).
macro_rules! steps {
    ($($module:ident => $variant:ident),+ $(,)?) => {
        $(pub mod $module;)+

        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Step {
            $($variant),+
        }

        impl Step {
            pub const ALL: &'static [Step] = &[$(Step::$variant),+];

            /// The step's name: its `REFRESH_STEP` value and its module.
            pub fn name(self) -> &'static str {
                match self {
                    $(Step::$variant => stringify!($module)),+
                }
            }

            /// The logical id of the step's function in `infra/template.yaml`.
            pub fn function_logical_id(self) -> &'static str {
                match self {
                    $(Step::$variant => concat!(stringify!($variant), "Function")),+
                }
            }

            pub fn from_name(name: &str) -> Option<Step> {
                Step::ALL.iter().copied().find(|step| step.name() == name)
            }

            /// The step this function runs, from [`STEP_VAR`].
            pub fn from_env() -> StepResult<Step> {
                let name = std::env::var(STEP_VAR).unwrap_or_default();
                Step::from_name(&name).ok_or_else(|| {
                    let known: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
                    StepError::new(
                        ErrorKind::Configuration,
                        format!("{STEP_VAR} is {name:?}; it must name one of the steps: {}", known.join(", ")),
                    )
                })
            }

            /// Runs one invocation of the step.
            pub async fn invoke(self, context: Arc<Context>, payload: Value) -> Result<Value, StepFailure> {
                match self {
                    $(Step::$variant => invoke($module::parse, $module::handle, context, payload).await),+
                }
            }

            /// Parses and checks a payload as the step would, without running it.
            pub fn check_input(self, payload: Value) -> Result<(), StepFailure> {
                match self {
                    $(Step::$variant => $module::parse(payload).map(drop).map_err(StepFailure::from)),+
                }
            }
        }
    };
}

steps! {
    validate_input => ValidateInput,
    check_concurrency => CheckConcurrency,
    count_documents => CountDocuments,
    copy_data => CopyData,
    filter_tags => FilterTags,
    create_index => CreateIndex,
    plan_ranges => PlanRanges,
    check_worker => CheckWorker,
    start_reindex_task => StartReindexTask,
    get_reindex_task => GetReindexTask,
    finish_index => FinishIndex,
    check_index_health => CheckIndexHealth,
    start_filtered_reindex => StartFilteredReindex,
    get_es_task => GetEsTask,
    verify_filtered_index => VerifyFilteredIndex,
    check_record_drop => CheckRecordDrop,
    check_search_guard => CheckSearchGuard,
    preflight_promotion => PreflightPromotion,
    promote_table => PromoteTable,
    promote_aliases => PromoteAliases,
    promote_alias => PromoteAlias,
    delete_indices => DeleteIndices,
    report => Report,
    cleanup => Cleanup,
    forward_notification => ForwardNotification,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_is_found_by_its_name() {
        assert_eq!(Step::ALL.len(), 25);
        for step in Step::ALL {
            assert_eq!(Step::from_name(step.name()), Some(*step));
        }
        assert_eq!(Step::from_name("copy_data"), Some(Step::CopyData));
        assert_eq!(Step::CopyData.function_logical_id(), "CopyDataFunction");
        assert_eq!(Step::from_name("Copy data"), None);
        assert_eq!(Step::from_name(""), None);
    }
}
