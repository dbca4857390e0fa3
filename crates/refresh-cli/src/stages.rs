//! The stages an operator sees, and which states of the two state machines make up each.
//!
//! A test reads `statemachine/*.asl.json` and fails when a state is added, renamed or
//! removed without this table following, so `status` never silently drops a state.

use serde::Serialize;

/// One stage of a run, in the order the machine runs them (DESIGN §1 steps, grouped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Admission,
    CountBefore,
    Copy,
    CreateIndex,
    Reindex,
    FinishIndex,
    FilteredIndex,
    DropGuard,
    Constraints,
    PromoteTable,
    PromoteAliases,
    DeleteOld,
    Report,
    /// What the machine does after a failure (cleanup, re-enabling alarms).
    FailureCleanup,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Admission => "validate + concurrency",
            Stage::CountBefore => "count documents before",
            Stage::Copy => "copy data",
            Stage::CreateIndex => "create index",
            Stage::Reindex => "reindex",
            Stage::FinishIndex => "finish index",
            Stage::FilteredIndex => "filtered index",
            Stage::DropGuard => "drop guard",
            Stage::Constraints => "reapply constraints",
            Stage::PromoteTable => "promote table",
            Stage::PromoteAliases => "promote aliases",
            Stage::DeleteOld => "delete old indices",
            Stage::Report => "count after + report",
            Stage::FailureCleanup => "cleanup after failure",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Stage::Admission => "admission",
            Stage::CountBefore => "count_before",
            Stage::Copy => "copy",
            Stage::CreateIndex => "create_index",
            Stage::Reindex => "reindex",
            Stage::FinishIndex => "finish_index",
            Stage::FilteredIndex => "filtered_index",
            Stage::DropGuard => "drop_guard",
            Stage::Constraints => "constraints",
            Stage::PromoteTable => "promote_table",
            Stage::PromoteAliases => "promote_aliases",
            Stage::DeleteOld => "delete_old",
            Stage::Report => "report",
            Stage::FailureCleanup => "failure_cleanup",
        }
    }
}

/// Which of the stack's two machines a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Machine {
    Refresh,
    FilteredIndex,
}

impl Machine {
    pub fn of_state_machine_arn(arn: &str) -> Machine {
        if arn.ends_with(refresh_core::machines::FILTERED_MACHINE_SUFFIX) {
            Machine::FilteredIndex
        } else {
            Machine::Refresh
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Machine::Refresh => "refresh",
            Machine::FilteredIndex => "filtered-index",
        }
    }

    /// The stages this machine runs, in order (the failure stage last).
    pub fn stages(self) -> &'static [Stage] {
        match self {
            Machine::Refresh => &[
                Stage::Admission,
                Stage::CountBefore,
                Stage::Copy,
                Stage::CreateIndex,
                Stage::Reindex,
                Stage::FinishIndex,
                Stage::FilteredIndex,
                Stage::DropGuard,
                Stage::Constraints,
                Stage::PromoteTable,
                Stage::PromoteAliases,
                Stage::DeleteOld,
                Stage::Report,
                Stage::FailureCleanup,
            ],
            Machine::FilteredIndex => &[
                Stage::Admission,
                Stage::FilteredIndex,
                Stage::PromoteAliases,
                Stage::DeleteOld,
                Stage::FailureCleanup,
            ],
        }
    }
}

/// State names the interpreter reads data from. Each is checked against the definitions.
pub mod states {
    pub const VALIDATE_INPUT: &str = "Validate input";
    pub const REFRESH_REFUSED: &str = "Refresh refused";
    pub const REBUILD_REFUSED: &str = "Rebuild refused";
    pub const WAIT_FOR_OTHER_RUN: &str = "Wait for the other run to finish";
    pub const COUNT_BEFORE: &str = "Count documents before";
    pub const COPY_DATA: &str = "Copy data";
    pub const FILTER_TAGS: &str = "Filter tags on existing temp table";
    pub const PLAN_RANGES: &str = "Plan ranges";
    pub const REINDEX_RANGES: &str = "Reindex ranges";
    pub const LAUNCH_WORKER: &str = "Launch worker";
    pub const GET_REINDEX_PROGRESS: &str = "Get reindex progress";
    pub const RETRY_RANGE: &str = "Retry range on a fresh worker?";
    pub const RANGE_INDEXED: &str = "Range indexed";
    pub const RANGE_FAILED: &str = "Range failed";
    pub const GET_FILTERED_PROGRESS: &str = "Get filtered reindex progress";
    pub const CHECK_RECORD_DROP: &str = "Check record drop";
    pub const COUNT_AFTER: &str = "Count documents after";
    pub const REPORT: &str = "Report";
    pub const CLEAN_UP_FAILED_RUN: &str = "Clean up failed run";
    pub const DELETE_UNPROMOTED_FILTERED: &str = "Delete unpromoted filtered index";
    /// On `main` only, for now (see [`super::ON_MAIN_ONLY`]).
    pub const NOTIFY_REFUSED: &str = "Notify refused";

    pub const ALL: [&str; 20] = [
        VALIDATE_INPUT,
        REFRESH_REFUSED,
        REBUILD_REFUSED,
        WAIT_FOR_OTHER_RUN,
        COUNT_BEFORE,
        COPY_DATA,
        FILTER_TAGS,
        PLAN_RANGES,
        REINDEX_RANGES,
        LAUNCH_WORKER,
        GET_REINDEX_PROGRESS,
        RETRY_RANGE,
        RANGE_INDEXED,
        RANGE_FAILED,
        GET_FILTERED_PROGRESS,
        CHECK_RECORD_DROP,
        COUNT_AFTER,
        REPORT,
        CLEAN_UP_FAILED_RUN,
        DELETE_UNPROMOTED_FILTERED,
    ];
}

/// States of the definitions on `main` (at 55f2501: notifications, the search guard, the
/// promotion pre-flight, the alias roll-forward) that this branch's definitions predate.
/// Listed so a deployed stack built from `main` is shown stage by stage. Once merged they
/// exist in `statemachine/`, and `main_only_states_are_gone_after_the_merge` asks for this
/// list to be emptied.
pub const ON_MAIN_ONLY: &[&str] = &[
    "Notify refused",
    "Notify started",
    "Notify copy done",
    "Any range indexed?",
    "Summarise reindex",
    "Notify reindex done",
    "Notify filtered index done",
    "Check search guard",
    "Preflight promotion",
    "Promote aliases",
    "Keep retrying the aliases?",
    "Wait before retrying the aliases",
    "Count alias attempt",
    "Prepare the finish payload",
    "Aliases not promoted",
    "Notify promoted",
    "Delete old indices",
    "Notify report",
    "Report is the output",
    "Notify failure",
];

const ADMISSION: &[&str] = &[
    "Prepare input",
    "Add execution context",
    states::VALIDATE_INPUT,
    "Concurrent runs allowed?",
    "Check concurrency",
    "Keep waiting for the other run?",
    states::WAIT_FOR_OTHER_RUN,
    "Count conflict wait",
    states::REFRESH_REFUSED,
    states::REBUILD_REFUSED,
    states::NOTIFY_REFUSED,
];

const COPY: &[&str] = &[
    "Copy or reuse temp table?",
    states::FILTER_TAGS,
    "Start copy",
    states::COPY_DATA,
    "Copy finished?",
    "Notify copy done",
];

/// The reindex stage: planning, alarms around it, the Map and every state of an iteration.
const REINDEX: &[&str] = &[
    states::PLAN_RANGES,
    "Silence alarms?",
    "Disable alarm actions",
    states::REINDEX_RANGES,
    "Restore alarms?",
    "Enable alarm actions",
    states::LAUNCH_WORKER,
    "Wait for instance to boot",
    "Describe worker instance",
    "Is instance running?",
    "Count instance check",
    "Worker instance did not start",
    "Resolve worker IP",
    "Check worker health",
    "Is worker healthy?",
    "Wait for worker to answer",
    "Count worker health check",
    "Worker never answered",
    "Start reindex task",
    "Wait for reindex progress",
    states::GET_REINDEX_PROGRESS,
    "Reindex finished?",
    "Count reindex poll",
    "Reindex took too long",
    "Terminate worker",
    "Worker could not be terminated",
    "Did the range succeed?",
    states::RANGE_INDEXED,
    states::RETRY_RANGE,
    "Prepare next attempt",
    states::RANGE_FAILED,
    "Any range indexed?",
    "Summarise reindex",
    "Notify reindex done",
];

const FINISH_INDEX: &[&str] = &[
    "Finish new index",
    "Check new index health",
    "Is new index healthy?",
    "Wait for new index health",
    "Count new index health check",
    "New index never became healthy",
];

const FILTERED_INDEX: &[&str] = &[
    "Create filtered index",
    "Start filtered reindex",
    "Wait for filtered reindex",
    states::GET_FILTERED_PROGRESS,
    "Filtered reindex finished?",
    "Count filtered reindex poll",
    "Filtered reindex took too long",
    "Finish filtered index",
    "Check filtered index health",
    "Is filtered index healthy?",
    "Wait for filtered index health",
    "Count filtered index health check",
    "Filtered index never became healthy",
    "Notify filtered index done",
];

const FAILURE: &[&str] = &[
    "Re-enable alarm actions after failure?",
    "Enable alarm actions after failure",
    states::CLEAN_UP_FAILED_RUN,
    "Refresh failed",
    states::DELETE_UNPROMOTED_FILTERED,
    "Rebuild failed",
    "Notify failure",
];

const TABLE: &[(Stage, &[&str])] = &[
    (Stage::Admission, ADMISSION),
    (
        Stage::CountBefore,
        &[states::COUNT_BEFORE, "Notify started"],
    ),
    (Stage::Copy, COPY),
    (Stage::CreateIndex, &["Create new index"]),
    (Stage::Reindex, REINDEX),
    (Stage::FinishIndex, FINISH_INDEX),
    (Stage::FilteredIndex, FILTERED_INDEX),
    (
        Stage::DropGuard,
        &[states::CHECK_RECORD_DROP, "Check search guard"],
    ),
    (
        Stage::Constraints,
        &["Reapply constraints", "Constraints reapplied?"],
    ),
    (
        Stage::PromoteTable,
        &["Preflight promotion", "Promote table"],
    ),
    (
        Stage::PromoteAliases,
        &[
            "Promote index alias",
            "Promote filtered index alias",
            "Promote aliases",
            "Keep retrying the aliases?",
            "Wait before retrying the aliases",
            "Count alias attempt",
            "Prepare the finish payload",
            "Aliases not promoted",
            "Notify promoted",
        ],
    ),
    (
        Stage::DeleteOld,
        &[
            "Delete old index",
            "Delete old filtered index",
            "Delete old indices",
            "Filtered index rebuilt",
        ],
    ),
    (
        Stage::Report,
        &[
            states::COUNT_AFTER,
            states::REPORT,
            "Notify report",
            "Report is the output",
            "Refresh succeeded",
        ],
    ),
    (Stage::FailureCleanup, FAILURE),
];

/// The stage a state belongs to (`None` for a state this table does not know: a newer
/// definition than this binary).
pub fn stage_of(state: &str) -> Option<Stage> {
    TABLE
        .iter()
        .find(|(_, names)| names.contains(&state))
        .map(|(stage, _)| *stage)
}

/// States after which the run has been refused (nothing was created).
pub fn is_refused_state(state: &str) -> bool {
    [
        states::REFRESH_REFUSED,
        states::REBUILD_REFUSED,
        states::NOTIFY_REFUSED,
    ]
    .contains(&state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    fn definition(file: &str) -> Value {
        let path = format!("{}/../../statemachine/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn state_names(states: &Value, into: &mut BTreeSet<String>) {
        let Some(states) = states.as_object() else {
            return;
        };
        for (name, state) in states {
            into.insert(name.clone());
            for key in ["ItemProcessor", "Iterator"] {
                if let Some(inner) = state.get(key) {
                    state_names(&inner["States"], into);
                }
            }
            if let Some(branches) = state.get("Branches").and_then(Value::as_array) {
                for branch in branches {
                    state_names(&branch["States"], into);
                }
            }
        }
    }

    fn all_states() -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for file in ["data-refresh.asl.json", "filtered-index.asl.json"] {
            state_names(&definition(file)["States"], &mut names);
        }
        names
    }

    #[test]
    fn every_state_of_both_machines_has_a_stage() {
        let missing: Vec<String> = all_states()
            .into_iter()
            .filter(|s| stage_of(s).is_none())
            .collect();
        assert!(missing.is_empty(), "states without a stage: {missing:?}");
    }

    #[test]
    fn every_state_in_the_table_exists() {
        let known = all_states();
        let stale: Vec<&str> = TABLE
            .iter()
            .flat_map(|(_, names)| names.iter().copied())
            .chain(states::ALL)
            .filter(|s| !known.contains(*s) && !ON_MAIN_ONLY.contains(s))
            .collect();
        assert!(stale.is_empty(), "states no definition has: {stale:?}");
    }

    #[test]
    fn main_only_states_are_gone_after_the_merge() {
        let known = all_states();
        let merged: Vec<&str> = ON_MAIN_ONLY
            .iter()
            .copied()
            .filter(|s| known.contains(*s))
            .collect();
        assert!(
            merged.is_empty(),
            "now in statemachine/: remove from ON_MAIN_ONLY: {merged:?}"
        );
    }

    #[test]
    fn each_state_is_in_one_stage_and_each_machine_lists_its_stages() {
        let mut seen = BTreeSet::new();
        for (_, names) in TABLE {
            for name in *names {
                assert!(seen.insert(*name), "{name} is in two stages");
            }
        }
        for machine in [Machine::Refresh, Machine::FilteredIndex] {
            for (stage, names) in TABLE {
                let used = names.iter().any(|n| {
                    let file = match machine {
                        Machine::Refresh => "data-refresh.asl.json",
                        Machine::FilteredIndex => "filtered-index.asl.json",
                    };
                    let mut in_machine = BTreeSet::new();
                    state_names(&definition(file)["States"], &mut in_machine);
                    in_machine.contains(*n)
                });
                assert_eq!(
                    used,
                    machine.stages().contains(stage),
                    "{machine:?} / {stage:?}"
                );
            }
        }
    }

    #[test]
    fn machine_is_told_by_its_arn() {
        assert_eq!(
            Machine::of_state_machine_arn("arn:aws:states:r:0:stateMachine:x-filtered-index"),
            Machine::FilteredIndex
        );
        assert_eq!(
            Machine::of_state_machine_arn("arn:aws:states:r:0:stateMachine:x-data-refresh"),
            Machine::Refresh
        );
    }
}
