//! What a failed, aborted or timed-out run may have left, and so what cleanup removes.
//!
//! The names come from the same rules validation used ([`crate::names`]), so cleanup can
//! only ever name this run's own indices; which of them an alias still points at is decided
//! at deletion time ([`crate::es::delete_unaliased`]).

use crate::concurrency::StateMachineKind;
use crate::environment::Environment;
use crate::error::StepResult;
use crate::input::RefreshParams;
use crate::machines::machine_kind;
use crate::media::MediaType;
use crate::names::{filtered_index_name, generated_suffix, index_name, validate_index_suffix};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// What one cleanup removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupPlan {
    pub execution_arn: String,
    pub kind: StateMachineKind,
    pub media: MediaType,
    pub environment: Environment,
    /// Candidates; those an alias points at are kept.
    pub indices: Vec<String>,
}

impl CleanupPlan {
    /// A data refresh run that reached its own Catch, with its validated parameters.
    pub fn from_params(params: &RefreshParams, execution_arn: &str) -> CleanupPlan {
        CleanupPlan {
            execution_arn: execution_arn.to_string(),
            kind: StateMachineKind::Refresh,
            media: params.media_type,
            environment: params.environment,
            indices: vec![params.new_index.clone(), params.new_filtered_index.clone()],
        }
    }

    /// A run known only by its execution input (a status change event). `Ok(None)` when the
    /// input could not have passed validation, so nothing was created under its names.
    /// `started` gives the execution start, which names the indices when the input has no
    /// suffix; it is only asked for then.
    pub fn from_execution_input(
        execution_arn: &str,
        state_machine_arn: &str,
        input: Option<&Value>,
        started: impl FnOnce() -> StepResult<DateTime<Utc>>,
    ) -> StepResult<Option<CleanupPlan>> {
        #[derive(Deserialize)]
        struct Scope {
            media_type: MediaType,
            environment: Environment,
            #[serde(default)]
            index_suffix: Option<String>,
        }
        let kind = machine_kind(state_machine_arn)?;
        let scope = match input {
            Some(Value::String(raw)) => serde_json::from_str::<Scope>(raw).ok(),
            Some(object @ Value::Object(_)) => serde_json::from_value::<Scope>(object.clone()).ok(),
            _ => None,
        };
        let Some(scope) = scope else {
            return Ok(None);
        };
        let suffix = match scope.index_suffix {
            Some(suffix) => suffix,
            None => generated_suffix(started()?),
        };
        if validate_index_suffix(scope.media_type, &suffix).is_err() {
            return Ok(None);
        }
        let filtered = filtered_index_name(scope.media_type, &suffix);
        let indices = match kind {
            StateMachineKind::Refresh => vec![index_name(scope.media_type, &suffix), filtered],
            StateMachineKind::FilteredIndex => vec![filtered],
        };
        Ok(Some(CleanupPlan {
            execution_arn: execution_arn.to_string(),
            kind,
            media: scope.media_type,
            environment: scope.environment,
            indices,
        }))
    }
}
