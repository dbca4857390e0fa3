//! The state machines as the code sees them: how their names end, which of their states
//! come before a run can create anything, how an execution ARN names its machine, and which
//! data refresh execution a worker-range execution works for.
//!
//! `functions/tests/asl_contract.rs` checks these against `statemachine/*.asl.json` and
//! `infra/template.yaml`, so a renamed state or machine fails a test instead of a cleanup.

use crate::concurrency::{StateMachineKind, WatchedStateMachine};
use crate::error::{StepError, StepResult};
use serde_json::Value;

/// The data refresh machine's name ends with this (the template names it).
pub const REFRESH_MACHINE_SUFFIX: &str = "-data-refresh";
/// The filtered-index machine's name ends with this.
pub const FILTERED_MACHINE_SUFFIX: &str = "-filtered-index";
/// The worker-range machine's name ends with this: one execution per range of a data refresh,
/// started by its reindex Map.
pub const WORKER_RANGE_MACHINE_SUFFIX: &str = "-worker-range";
/// The field of a worker-range execution's input naming the data refresh execution it works
/// for (its workers carry that execution in their `refresh:execution` tag).
pub const ROOT_EXECUTION_FIELD: &str = "root_execution_id";

/// The stack's state machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Machine {
    Refresh,
    FilteredIndex,
    WorkerRange,
}

impl Machine {
    pub const ALL: [Machine; 3] = [
        Machine::Refresh,
        Machine::FilteredIndex,
        Machine::WorkerRange,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            Machine::Refresh => REFRESH_MACHINE_SUFFIX,
            Machine::FilteredIndex => FILTERED_MACHINE_SUFFIX,
            Machine::WorkerRange => WORKER_RANGE_MACHINE_SUFFIX,
        }
    }

    /// Which machine a state machine ARN is, from its name.
    pub fn of_arn(state_machine_arn: &str) -> StepResult<Machine> {
        Machine::ALL
            .into_iter()
            .find(|m| state_machine_arn.ends_with(m.suffix()))
            .ok_or_else(|| {
                StepError::invalid_input(format!(
                    "detail.stateMachineArn: {state_machine_arn:?} is not a …{REFRESH_MACHINE_SUFFIX}, …{FILTERED_MACHINE_SUFFIX} or …{WORKER_RANGE_MACHINE_SUFFIX} state machine"
                ))
            })
    }

    /// The machine as the concurrency rule sees it. `None` for the worker-range machine: its
    /// executions are parts of a data refresh, never a run that holds an environment.
    pub fn watched_kind(self) -> Option<StateMachineKind> {
        match self {
            Machine::Refresh => Some(StateMachineKind::Refresh),
            Machine::FilteredIndex => Some(StateMachineKind::FilteredIndex),
            Machine::WorkerRange => None,
        }
    }
}

/// States a run passes before it may create anything: input preparation, validation and the
/// concurrency check with its wait loop, in either machine. A run that entered no other
/// state was refused. The filtered-index machine's first notification follows its admission
/// and creates nothing either: a run stopped there has nothing to clean up.
pub const ADMISSION_STATES: [&str; 12] = [
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
    "Notify rebuild started",
];

/// States that run because something failed (both machines' failure paths, the data refresh's
/// worker-job failure chain included): never the state that failed.
pub const FAILURE_PATH_STATES: [&str; 14] = [
    "Worker job failed",
    "Read worker job failure",
    "Worker job failure named?",
    "Name worker job failure",
    "Keep worker job failure as reported",
    "Re-enable alarm actions after failure?",
    "Enable alarm actions after failure",
    "Clean up failed run",
    "Note cleanup failure",
    "Notify failure",
    "Refresh failed",
    "Delete unpromoted filtered index",
    "Note deletion failure",
    "Rebuild failed",
];

/// The reindex Map and the states of its iteration: a failure inside is the Map's.
pub const REINDEX_MAP_STATE: &str = "Reindex ranges";
pub const REINDEX_ITERATION_STATES: [&str; 8] = [
    "Index range on a worker",
    "Child failure has a cause?",
    "Child failure is a description?",
    "Read child failure",
    "Child failure named?",
    "Child failure is text?",
    "Range failed",
    "Range could not run",
];

/// The state whose failure sent a run (either machine) down its failure path, from the names of the
/// states it entered, newest first: the newest one outside the failure path (the Map for a
/// state of its iteration). A Task that failed, or the Pass that declared the failure (*New
/// index never became healthy*, *Aliases not promoted*, …).
pub fn failed_state<'a>(entered_newest_first: impl IntoIterator<Item = &'a str>) -> Option<String> {
    entered_newest_first
        .into_iter()
        .find(|name| !FAILURE_PATH_STATES.contains(name))
        .map(|name| {
            if REINDEX_ITERATION_STATES.contains(&name) {
                REINDEX_MAP_STATE.to_string()
            } else {
                name.to_string()
            }
        })
}

/// Whether a run entered any state past admission (and so may have created something).
pub fn got_past_admission<'a>(entered_states: impl IntoIterator<Item = &'a str>) -> bool {
    entered_states
        .into_iter()
        .any(|name| !ADMISSION_STATES.contains(&name))
}

/// Which of the two machines that hold an environment a state machine ARN is. A
/// worker-range ARN is refused: its executions hold nothing of their own.
pub fn machine_kind(state_machine_arn: &str) -> StepResult<StateMachineKind> {
    let machine = Machine::of_arn(state_machine_arn)?;
    machine.watched_kind().ok_or_else(|| {
        StepError::invalid_input(format!(
            "detail.stateMachineArn: {state_machine_arn:?} runs one range of a data refresh, not a refresh of its own"
        ))
    })
}

/// The ARN of the stack's `machine`, from the ARN of any of its machines.
pub fn sibling_machine(state_machine_arn: &str, machine: Machine) -> StepResult<String> {
    let own = Machine::of_arn(state_machine_arn)?;
    let stem = state_machine_arn
        .strip_suffix(own.suffix())
        .unwrap_or(state_machine_arn);
    Ok(format!("{stem}{}", machine.suffix()))
}

/// The machines whose running executions can conflict (data refresh and filtered index),
/// from the ARN of any machine of the stack. Never the worker-range machine: a range of a
/// refresh is not a refresh, so it can neither block one nor be blocked.
pub fn watched_machines(state_machine_arn: &str) -> StepResult<Vec<WatchedStateMachine>> {
    Machine::ALL
        .into_iter()
        .filter_map(|machine| Some((machine, machine.watched_kind()?)))
        .map(|(machine, kind)| {
            Ok(WatchedStateMachine {
                kind,
                arn: sibling_machine(state_machine_arn, machine)?,
            })
        })
        .collect()
}

/// The data refresh execution a worker-range execution works for, from its input (the
/// JSON object, or the JSON text DescribeExecution returns). `None` when the input names
/// none.
pub fn root_execution_of(input: &Value) -> Option<String> {
    let parsed;
    let object = match input {
        Value::String(text) => {
            parsed = serde_json::from_str::<Value>(text).ok()?;
            &parsed
        }
        other => other,
    };
    object
        .get(ROOT_EXECUTION_FIELD)
        .and_then(Value::as_str)
        .filter(|arn| state_machine_of_execution(arn).is_some())
        .map(str::to_string)
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
    fn the_failed_state_is_the_newest_outside_the_failure_path() {
        let entered = [
            "Notify failure",
            "Clean up failed run",
            "Re-enable alarm actions after failure?",
            "Name worker job failure",
            "Worker job failure named?",
            "Read worker job failure",
            "Worker job failed",
            "Reapply constraints on a worker",
            "Check search guard",
        ];
        assert_eq!(
            failed_state(entered).as_deref(),
            Some("Reapply constraints on a worker")
        );
        assert_eq!(
            failed_state(["Clean up failed run", "Range failed", "Read child failure"]).as_deref(),
            Some(REINDEX_MAP_STATE)
        );
        assert_eq!(
            failed_state(["Clean up failed run", "New index never became healthy"]).as_deref(),
            Some("New index never became healthy")
        );
        assert_eq!(
            failed_state([
                "Notify failure",
                "Delete unpromoted filtered index",
                "Create filtered index"
            ])
            .as_deref(),
            Some("Create filtered index")
        );
        assert_eq!(failed_state(["Clean up failed run"]), None);
    }

    fn definition_states(file: &str) -> (Vec<String>, Vec<String>) {
        let path = format!("{}/../../statemachine/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let definition: Value = serde_json::from_str(&text).unwrap();
        let top = definition["States"].as_object().unwrap();
        let inner = top
            .values()
            .filter_map(|s| s["ItemProcessor"]["States"].as_object())
            .flat_map(|m| m.keys().cloned())
            .collect();
        (top.keys().cloned().collect(), inner)
    }

    #[test]
    fn the_state_lists_are_the_definitions_names() {
        let (top, inner) = definition_states("data-refresh.asl.json");
        let (filtered, _) = definition_states("filtered-index.asl.json");
        for name in FAILURE_PATH_STATES {
            assert!(
                top.iter().chain(&filtered).any(|t| t == name),
                "{name} is not a data refresh or filtered-index state"
            );
        }
        assert!(top.iter().any(|t| t == REINDEX_MAP_STATE));
        let mut listed = REINDEX_ITERATION_STATES.to_vec();
        listed.sort_unstable();
        let mut inner: Vec<&str> = inner.iter().map(String::as_str).collect();
        inner.sort_unstable();
        assert_eq!(inner, listed);
    }

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
    fn worker_range_executions_are_never_watched_for_conflicts() {
        let from_child =
            watched_machines("arn:aws:states:r:0:stateMachine:st-worker-range").unwrap();
        assert_eq!(
            from_child,
            watched_machines("arn:aws:states:r:0:stateMachine:st-data-refresh").unwrap()
        );
        assert!(from_child.iter().all(|m| !m.arn.ends_with("-worker-range")));
        assert_eq!(
            Machine::of_arn("arn:aws:states:r:0:stateMachine:st-worker-range").unwrap(),
            Machine::WorkerRange
        );
        assert_eq!(Machine::WorkerRange.watched_kind(), None);
        // Cleanup may never plan tables and indices for a range of a refresh.
        assert!(machine_kind("arn:aws:states:r:0:stateMachine:st-worker-range").is_err());
        assert_eq!(
            sibling_machine(
                "arn:aws:states:r:0:stateMachine:st-data-refresh",
                Machine::WorkerRange
            )
            .unwrap(),
            "arn:aws:states:r:0:stateMachine:st-worker-range"
        );
    }

    #[test]
    fn a_worker_range_input_names_its_data_refresh_execution() {
        let root = "arn:aws:states:r:0:execution:st-data-refresh:run-1";
        let input = serde_json::json!({"root_execution_id": root, "range": {}, "params": {}});
        assert_eq!(root_execution_of(&input).as_deref(), Some(root));
        // DescribeExecution gives the input as text.
        assert_eq!(
            root_execution_of(&Value::String(input.to_string())).as_deref(),
            Some(root)
        );
        for other in [
            serde_json::json!({}),
            serde_json::json!({"root_execution_id": 7}),
            serde_json::json!({"root_execution_id": "not an execution"}),
            Value::String("not json".into()),
            Value::Null,
        ] {
            assert_eq!(root_execution_of(&other), None, "{other}");
        }
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
