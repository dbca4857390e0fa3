//! The stages an operator sees, and which states of the stack's state machines make up each.
//!
//! A test reads `statemachine/*.asl.json` and fails when a state is added, renamed or
//! removed without this table following, so `status` never silently drops a state. The
//! worker-range machine's states (one range of the reindex, in its own execution) are part
//! of the reindex stage. States of older definitions stay known as [`LEGACY`]: recorded runs
//! (and the history of a long-lived stack) still carry them.

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
    /// The drop guard and the search guard.
    DropGuard,
    Constraints,
    Preflight,
    /// Made just before promotion (after it, in runs older than the pre-flight).
    Report,
    PromoteTable,
    PromoteAliases,
    /// The worker's validate_foreign_keys job, after the aliases.
    ForeignKeys,
    DeleteOld,
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
            Stage::DropGuard => "drop + search guards",
            Stage::Constraints => "reapply constraints",
            Stage::Preflight => "promotion pre-flight",
            Stage::Report => "report",
            Stage::PromoteTable => "promote table",
            Stage::PromoteAliases => "promote aliases",
            Stage::ForeignKeys => "validate foreign keys",
            Stage::DeleteOld => "delete old indices",
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
            Stage::Preflight => "preflight",
            Stage::Report => "report",
            Stage::PromoteTable => "promote_table",
            Stage::PromoteAliases => "promote_aliases",
            Stage::ForeignKeys => "foreign_keys",
            Stage::DeleteOld => "delete_old",
            Stage::FailureCleanup => "failure_cleanup",
        }
    }
}

/// Which of the stack's machines an execution belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Machine {
    Refresh,
    FilteredIndex,
    /// One range of a refresh's reindex, started by the refresh's Map: never on its own.
    WorkerRange,
}

impl Machine {
    pub fn of_state_machine_arn(arn: &str) -> Machine {
        use refresh_core::machines::{FILTERED_MACHINE_SUFFIX, WORKER_RANGE_MACHINE_SUFFIX};
        if arn.ends_with(FILTERED_MACHINE_SUFFIX) {
            Machine::FilteredIndex
        } else if arn.ends_with(WORKER_RANGE_MACHINE_SUFFIX) {
            Machine::WorkerRange
        } else {
            Machine::Refresh
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Machine::Refresh => "refresh",
            Machine::FilteredIndex => "filtered-index",
            Machine::WorkerRange => "worker-range",
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
                Stage::Preflight,
                Stage::Report,
                Stage::PromoteTable,
                Stage::PromoteAliases,
                Stage::ForeignKeys,
                Stage::DeleteOld,
                Stage::FailureCleanup,
            ],
            Machine::FilteredIndex => &[
                Stage::Admission,
                Stage::FilteredIndex,
                Stage::PromoteAliases,
                Stage::DeleteOld,
                Stage::FailureCleanup,
            ],
            Machine::WorkerRange => &[Stage::Reindex],
        }
    }
}

/// State names the interpreter reads data from. Each is checked against the definitions
/// (or [`LEGACY`]).
pub mod states {
    pub const VALIDATE_INPUT: &str = "Validate input";
    pub const REFRESH_REFUSED: &str = "Refresh refused";
    pub const REBUILD_REFUSED: &str = "Rebuild refused";
    pub const NOTIFY_REFUSED: &str = "Notify refused";
    pub const WAIT_FOR_OTHER_RUN: &str = "Wait for the other run to finish";
    pub const COUNT_BEFORE: &str = "Count documents before";
    pub const COPY_DATA: &str = "Copy data";
    pub const FILTER_TAGS: &str = "Filter tags on existing temp table";
    pub const PLAN_RANGES: &str = "Plan ranges";
    pub const REINDEX_RANGES: &str = "Reindex ranges";
    /// The Map's iteration: starts the range's worker-range execution and waits for it.
    pub const INDEX_RANGE_ON_A_WORKER: &str = "Index range on a worker";
    pub const RANGE_COULD_NOT_RUN: &str = "Range could not run";
    pub const LAUNCH_WORKER: &str = "Launch worker";
    pub const GET_REINDEX_PROGRESS: &str = "Get reindex progress";
    pub const RETRY_RANGE: &str = "Retry range on a fresh worker?";
    pub const RANGE_INDEXED: &str = "Range indexed";
    /// In the worker-range machine (attempts used up) and in the refresh's Map (the range's
    /// execution failed); inside the refresh's Map in older definitions.
    pub const RANGE_FAILED: &str = "Range failed";
    pub const GET_FILTERED_PROGRESS: &str = "Get filtered reindex progress";
    pub const VERIFY_FILTERED_INDEX: &str = "Verify filtered index";
    pub const CHECK_RECORD_DROP: &str = "Check record drop";
    pub const CHECK_SEARCH_GUARD: &str = "Check search guard";
    pub const PREFLIGHT_PROMOTION: &str = "Preflight promotion";
    pub const REPORT: &str = "Report";
    pub const WAIT_BEFORE_RETRYING_ALIASES: &str = "Wait before retrying the aliases";
    pub const CLEAN_UP_FAILED_RUN: &str = "Clean up failed run";
    pub const DELETE_UNPROMOTED_FILTERED: &str = "Delete unpromoted filtered index";
    /// Legacy: the count after promotion, before the report counted for itself.
    pub const COUNT_AFTER: &str = "Count documents after";

    pub const ALL: [&str; 27] = [
        VALIDATE_INPUT,
        REFRESH_REFUSED,
        REBUILD_REFUSED,
        NOTIFY_REFUSED,
        WAIT_FOR_OTHER_RUN,
        COUNT_BEFORE,
        COPY_DATA,
        FILTER_TAGS,
        PLAN_RANGES,
        REINDEX_RANGES,
        INDEX_RANGE_ON_A_WORKER,
        RANGE_COULD_NOT_RUN,
        LAUNCH_WORKER,
        GET_REINDEX_PROGRESS,
        RETRY_RANGE,
        RANGE_INDEXED,
        RANGE_FAILED,
        GET_FILTERED_PROGRESS,
        VERIFY_FILTERED_INDEX,
        CHECK_RECORD_DROP,
        CHECK_SEARCH_GUARD,
        PREFLIGHT_PROMOTION,
        REPORT,
        WAIT_BEFORE_RETRYING_ALIASES,
        CLEAN_UP_FAILED_RUN,
        DELETE_UNPROMOTED_FILTERED,
        COUNT_AFTER,
    ];
}

/// States of older definitions that the current ones no longer have, kept so that recorded
/// runs (the fixtures, and the history of a stack that ran them) still show stage by stage.
/// A test fails when one of them is back in a definition.
pub const LEGACY: &[&str] = &[
    // Before the aliases moved together (one `Promote aliases` call).
    "Promote index alias",
    "Delete old index",
    // Before the report counted both sides itself, just before promotion.
    states::COUNT_AFTER,
    // Before step 8 ran as the worker's reapply SQL job.
    "Reapply constraints",
    "Constraints reapplied?",
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
    "Finish copy on a worker",
    "Notify copy done",
];

/// The reindex stage: planning, alarms around it, the Map with its iteration, and every
/// state of the worker-range machine (each range's own execution).
const REINDEX: &[&str] = &[
    states::PLAN_RANGES,
    "Silence alarms?",
    "Disable alarm actions",
    states::REINDEX_RANGES,
    states::INDEX_RANGE_ON_A_WORKER,
    "Child failure has a cause?",
    "Child failure is a description?",
    "Read child failure",
    "Child failure named?",
    "Child failure is text?",
    states::RANGE_COULD_NOT_RUN,
    "Restore alarms?",
    "Enable alarm actions",
    "Any range indexed?",
    "Summarise reindex",
    "Notify reindex done",
    // The worker-range machine (its SQL-job states too: the same machine runs the SQL jobs).
    "Range or SQL job?",
    "Prepare range",
    "Prepare SQL job",
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
    "Range or SQL job done?",
    states::RANGE_INDEXED,
    "SQL job done",
    states::RETRY_RANGE,
    "Prepare next attempt",
    states::RANGE_FAILED,
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
    // Dual write: the gate over what the workers wrote (a rebuild goes on below).
    "Filtered index written by the workers?",
    states::VERIFY_FILTERED_INDEX,
    "Filtered index verified?",
    "Keep verified filtered index count",
    "Delete unverified filtered index",
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
    // The filtered-index machine's notice that its rebuild is admitted.
    "Notify rebuild started",
];

const PROMOTE_ALIASES: &[&str] = &[
    "Promote aliases",
    "Keep retrying the aliases?",
    states::WAIT_BEFORE_RETRYING_ALIASES,
    "Count alias attempt",
    "Prepare the finish payload",
    "Aliases not promoted",
    "Notify promoted",
    // The filtered-index machine moves its one alias (and so did older refreshes).
    "Promote filtered index alias",
    "Promote index alias",
];

// The same list cleanup reads the failed state by: one place for it.
const FAILURE: &[&str] = &refresh_core::machines::FAILURE_PATH_STATES;

const TABLE: &[(Stage, &[&str])] = &[
    (Stage::Admission, ADMISSION),
    (
        Stage::CountBefore,
        &[states::COUNT_BEFORE, "Notify started"],
    ),
    (Stage::Copy, COPY),
    (
        Stage::CreateIndex,
        &[
            "Create new index",
            // Dual write: the filtered index exists before the workers write into it.
            "Write the filtered index in the same pass?",
            "Create filtered index for dual write",
        ],
    ),
    (Stage::Reindex, REINDEX),
    (Stage::FinishIndex, FINISH_INDEX),
    (Stage::FilteredIndex, FILTERED_INDEX),
    (
        Stage::DropGuard,
        &[states::CHECK_RECORD_DROP, states::CHECK_SEARCH_GUARD],
    ),
    (
        Stage::Constraints,
        &[
            "Reapply constraints on a worker",
            "Reapply constraints",
            "Constraints reapplied?",
        ],
    ),
    (Stage::Preflight, &[states::PREFLIGHT_PROMOTION]),
    (Stage::Report, &[states::REPORT, states::COUNT_AFTER]),
    (Stage::PromoteTable, &["Promote table"]),
    (Stage::PromoteAliases, PROMOTE_ALIASES),
    (
        Stage::ForeignKeys,
        &[
            "Validate foreign keys on a worker",
            "Note foreign keys not validated",
        ],
    ),
    (
        Stage::DeleteOld,
        &[
            "Delete old indices",
            "Delete old filtered index",
            "Delete old index",
        ],
    ),
    (Stage::FailureCleanup, FAILURE),
];

/// States that close a run: they belong to whichever stage ran before them (the last one:
/// the old indices deleted, or — in runs older than the pre-flight — the report), so they
/// neither open a stage of their own nor reopen one.
pub const CLOSING: &[&str] = &[
    "Notify report",
    "Foreign keys validated?",
    "Foreign keys not validated",
    "Output the report",
    "Refresh succeeded",
    "Notify rebuild done",
    "Filtered index rebuilt",
];

/// The stage a state belongs to (`None` for a closing state, or one this table does not
/// know: a newer definition than this binary).
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

    const DEFINITIONS: [(&str, Machine); 3] = [
        ("data-refresh.asl.json", Machine::Refresh),
        ("filtered-index.asl.json", Machine::FilteredIndex),
        ("worker-range.asl.json", Machine::WorkerRange),
    ];

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

    fn states_of(machine: Machine) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for (file, of) in DEFINITIONS {
            if of == machine {
                state_names(&definition(file)["States"], &mut names);
            }
        }
        names
    }

    fn all_states() -> BTreeSet<String> {
        DEFINITIONS
            .iter()
            .flat_map(|(_, machine)| states_of(*machine))
            .collect()
    }

    #[test]
    fn every_state_of_every_machine_has_a_stage() {
        let missing: Vec<String> = all_states()
            .into_iter()
            .filter(|s| stage_of(s).is_none() && !CLOSING.contains(&s.as_str()))
            .collect();
        assert!(missing.is_empty(), "states without a stage: {missing:?}");
    }

    #[test]
    fn every_state_in_the_table_exists_or_is_legacy() {
        let known = all_states();
        let stale: Vec<&str> = TABLE
            .iter()
            .flat_map(|(_, names)| names.iter().copied())
            .chain(states::ALL)
            .chain(CLOSING.iter().copied())
            .filter(|s| !known.contains(*s) && !LEGACY.contains(s))
            .collect();
        assert!(stale.is_empty(), "states no definition has: {stale:?}");
    }

    #[test]
    fn legacy_states_are_in_no_definition_and_in_the_table() {
        let known = all_states();
        let back: Vec<&str> = LEGACY
            .iter()
            .copied()
            .filter(|s| known.contains(*s))
            .collect();
        assert!(
            back.is_empty(),
            "in statemachine/ again: remove from LEGACY: {back:?}"
        );
        for name in LEGACY {
            assert!(stage_of(name).is_some(), "{name} has no stage");
        }
    }

    /// Every state the recorded runs entered is known, so each older run still renders.
    #[test]
    fn every_state_of_the_recorded_runs_is_known() {
        let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
        let mut unknown = BTreeSet::new();
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let run: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let histories = std::iter::once(&run["history"]).chain(
                run["children"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| &c["history"]),
            );
            for history in histories {
                for event in history["events"].as_array().into_iter().flatten() {
                    if let Some(name) = event["stateEnteredEventDetails"]["name"].as_str() {
                        // The e2e dual-write test's own Wait, patched into the definition.
                        let test_only = name == "Hold for the test";
                        if stage_of(name).is_none() && !CLOSING.contains(&name) && !test_only {
                            unknown.insert(format!("{}: {name}", path.display()));
                        }
                    }
                }
            }
        }
        assert!(unknown.is_empty(), "{unknown:?}");
    }

    #[test]
    fn each_state_is_in_one_stage_and_each_machine_lists_its_stages() {
        let mut seen = BTreeSet::new();
        for (_, names) in TABLE {
            for name in *names {
                assert!(seen.insert(*name), "{name} is in two stages");
            }
        }
        for name in CLOSING {
            assert!(stage_of(name).is_none(), "{name} is closing and in a stage");
        }
        for (_, machine) in DEFINITIONS {
            let in_machine = states_of(machine);
            for (stage, names) in TABLE {
                let used = names.iter().any(|n| in_machine.contains(*n));
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
        assert_eq!(
            Machine::of_state_machine_arn("arn:aws:states:r:0:stateMachine:x-worker-range"),
            Machine::WorkerRange
        );
    }
}
