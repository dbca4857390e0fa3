//! The two state machines as the code sees them: how their names end, which of their states
//! come before a run can create anything, and how an execution ARN names its machine.
//!
//! `functions/tests/asl_contract.rs` checks these against `statemachine/*.asl.json` and
//! `infra/template.yaml`, so a renamed state or machine fails a test instead of a cleanup.

use crate::concurrency::{StateMachineKind, WatchedStateMachine};
use crate::error::{StepError, StepResult};

/// The data refresh machine's name ends with this (the template names it).
pub const REFRESH_MACHINE_SUFFIX: &str = "-data-refresh";
/// The filtered-index machine's name ends with this.
pub const FILTERED_MACHINE_SUFFIX: &str = "-filtered-index";

/// States a run passes before it may create anything: input preparation, validation and the
/// concurrency check with its wait loop, in either machine. A run that entered no other
/// state was refused.
pub const ADMISSION_STATES: [&str; 11] = [
    "Prepare input",
    "Add execution context",
    "Validate input",
    "Concurrent runs allowed?",
    "Check concurrency",
    "Keep waiting for the other run?",
    "Wait for the other run to finish",
    "Count conflict wait",
    "Notify refused",
    "Refresh refused",
    "Rebuild refused",
];

/// Whether a run entered any state past admission (and so may have created something).
pub fn got_past_admission<'a>(entered_states: impl IntoIterator<Item = &'a str>) -> bool {
    entered_states
        .into_iter()
        .any(|name| !ADMISSION_STATES.contains(&name))
}

/// Which machine a state machine ARN is, from its name.
pub fn machine_kind(state_machine_arn: &str) -> StepResult<StateMachineKind> {
    if state_machine_arn.ends_with(REFRESH_MACHINE_SUFFIX) {
        Ok(StateMachineKind::Refresh)
    } else if state_machine_arn.ends_with(FILTERED_MACHINE_SUFFIX) {
        Ok(StateMachineKind::FilteredIndex)
    } else {
        Err(StepError::invalid_input(format!(
            "detail.stateMachineArn: {state_machine_arn:?} is neither a …{REFRESH_MACHINE_SUFFIX} nor a …{FILTERED_MACHINE_SUFFIX} state machine"
        )))
    }
}

/// Both machines of the stack, from the ARN of either.
pub fn watched_machines(state_machine_arn: &str) -> StepResult<Vec<WatchedStateMachine>> {
    machine_kind(state_machine_arn)?;
    let stem = state_machine_arn
        .strip_suffix(REFRESH_MACHINE_SUFFIX)
        .or_else(|| state_machine_arn.strip_suffix(FILTERED_MACHINE_SUFFIX))
        .unwrap_or(state_machine_arn);
    Ok(vec![
        WatchedStateMachine {
            kind: StateMachineKind::Refresh,
            arn: format!("{stem}{REFRESH_MACHINE_SUFFIX}"),
        },
        WatchedStateMachine {
            kind: StateMachineKind::FilteredIndex,
            arn: format!("{stem}{FILTERED_MACHINE_SUFFIX}"),
        },
    ])
}

/// `arn:…:execution:<machine>:<name>` → `arn:…:stateMachine:<machine>`.
pub fn state_machine_of_execution(execution_arn: &str) -> Option<String> {
    let (head, tail) = execution_arn.split_once(":execution:")?;
    let (machine, name) = tail.split_once(':')?;
    (!machine.is_empty() && !name.is_empty()).then(|| format!("{head}:stateMachine:{machine}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_runs_never_got_past_admission() {
        assert!(!got_past_admission([
            "Prepare input",
            "Add execution context",
            "Validate input",
            "Concurrent runs allowed?",
            "Check concurrency",
            "Keep waiting for the other run?",
            "Wait for the other run to finish",
            "Count conflict wait",
            "Check concurrency",
            "Refresh refused",
        ]));
        assert!(!got_past_admission([]));
        assert!(got_past_admission([
            "Prepare input",
            "Check concurrency",
            "Count documents before"
        ]));
        assert!(got_past_admission([
            "Validate input",
            "Create filtered index"
        ]));
    }

    #[test]
    fn sibling_machines_are_derived_from_either_arn() {
        let from_refresh =
            watched_machines("arn:aws:states:r:0:stateMachine:st-data-refresh").unwrap();
        let from_filtered =
            watched_machines("arn:aws:states:r:0:stateMachine:st-filtered-index").unwrap();
        assert_eq!(from_refresh, from_filtered);
        assert_eq!(
            from_refresh[1].arn,
            "arn:aws:states:r:0:stateMachine:st-filtered-index"
        );
        assert!(machine_kind("arn:aws:states:r:0:stateMachine:something-else").is_err());
        assert!(watched_machines("arn:aws:states:r:0:stateMachine:something-else").is_err());
    }

    #[test]
    fn execution_arn_names_its_state_machine() {
        assert_eq!(
            state_machine_of_execution(
                "arn:aws:states:us-east-1:000000000000:execution:stack-data-refresh:run-1"
            )
            .as_deref(),
            Some("arn:aws:states:us-east-1:000000000000:stateMachine:stack-data-refresh")
        );
        assert_eq!(
            state_machine_of_execution("arn:aws:states:us-east-1:0:stateMachine:x"),
            None
        );
        assert_eq!(
            state_machine_of_execution("arn:aws:states:r:0:execution:x:"),
            None
        );
    }
}
