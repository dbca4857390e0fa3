//! The state machines and the step binaries must agree on every JSON shape.
//!
//! For each Lambda Task of `statemachine/*.asl.json` this builds the payload the state machine
//! would send (its `Parameters`, with every `$.` path replaced by a sample of what that path
//! holds at run time) and parses it with the step's input type; and for each field the
//! definitions read back from a step's result (`$.<ResultPath>.<field>` in Choices, later
//! Parameters, ItemsPath), it checks the step's output has that field. A renamed field on either
//! side fails here instead of in a live execution.

use refresh_core::es::{
    AliasPromotion, AliasesPromotion, CreatedIndex, DeletedIndices, DocumentCounts,
    FilteredReindexStarted, FilteredVerification, IndexHealth, PreflightReport, SearchGuardReport,
    TaskStatus,
};
use refresh_core::guard::DropReport;
use refresh_core::machines::ADMISSION_STATES;
use refresh_core::pg::copy::CopyProgress;
use refresh_core::pg::promote::PromotionReport;
use refresh_core::ranges::plan_ranges;
use refresh_core::report::{BoundedCounts, RefreshReport, SOURCES_BUDGET_BYTES};
use refresh_functions::steps::check_worker::WorkerHealth;
use refresh_functions::steps::cleanup::CleanupOutput;
use refresh_functions::steps::delete_indices::DeleteIndicesOutput;
use refresh_functions::steps::filter_tags::TagsFiltered;
use refresh_functions::steps::forward_notification::Forwarded;
use refresh_functions::steps::start_reindex_task::StartedTask;
use refresh_functions::steps::Step;
use refresh_functions::worker_client::{
    SqlTaskProgress, SqlTaskStatus, TaskProgress, WorkerTaskStatus,
};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use support::{all_states, apply, at, load};

mod support;

const MACHINES: [(&str, &str); 3] = [
    ("data-refresh.asl.json", "stack-data-refresh"),
    ("filtered-index.asl.json", "stack-filtered-index"),
    ("worker-range.asl.json", "stack-worker-range"),
];
/// The machines that validate their input and hold an environment (the worker-range machine
/// runs one range of a data refresh).
const TOP_MACHINES: [(&str, &str); 2] = [MACHINES[0], MACHINES[1]];
const ARN_PREFIX: &str = "arn:aws:states:us-east-1:000000000000";

/// `${CheckConcurrencyFunctionArn}` → `check_concurrency`.
fn step_of(resource: &str) -> Option<String> {
    let camel = resource.strip_prefix("${")?.strip_suffix("FunctionArn}")?;
    let mut snake = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    Some(snake)
}

fn sample_params() -> Value {
    json!({
        "media_type": "image", "environment": "staging", "index_suffix": "init",
        "new_index": "image-init", "new_filtered_index": "image-init-filtered",
        "temp_table": "temp_import_image", "skip_copy": false, "allow_concurrent": false, "wait_if_busy": false,
        "max_record_drop_pct": 10.0, "override_record_drop": false, "row_limit": 100000,
        "worker_count": 2, "launch_template": "stack-indexer-worker-staging",
        "filtered_index": "dual_write"
    })
}

/// What a `$.` path (or intrinsic) holds at run time.
fn sample(expression: &str, machine: &str) -> Value {
    let counts = json!({"total": 1000, "by_source": {"flickr": 900, "met": 100}});
    match expression {
        "$.params" => sample_params(),
        "$$.Execution.Id" => json!(format!("{ARN_PREFIX}:execution:{machine}:run-1")),
        "$.params.media_type" => json!("image"),
        "$.params.environment" => json!("staging"),
        "$.params.new_index" => json!("image-init"),
        "$.params.new_filtered_index" => json!("image-init-filtered"),
        "$.record_drop" => {
            json!({"before": 1000, "after": 990, "drop_pct": 1.0, "overridden": false})
        }
        "$.search_guard" => {
            json!({"ran": true, "live_index": "image-old", "new_index": "image-init",
                                   "min_ratio": 0.9, "overridden": false,
                                   "queries": [{"name": "q", "live_hits": 10, "new_hits": 10, "ratio": 1.0, "passed": true}]})
        }
        "$.preflight" => {
            json!({"indices": {"image-init": "green"}, "aliases": {"image": "image-old"},
                                "disks": [{"node": "n", "used_pct": 50.0, "available_bytes": 10}],
                                "high_watermark": "90%"})
        }
        "States.Format('{}-filtered', $.params.media_type)" => json!("image-filtered"),
        "States.Array($.params.new_filtered_index)" => json!(["image-init-filtered"]),
        "$.copy.cursor" => Value::Null,
        "$.new_index.index" => json!("image-init"),
        "$.filtered_index.index" => json!("image-init-filtered"),
        "$.instance.ip" => json!("127.0.0.2"),
        "$.range" => json!({"start_id": 1, "end_id": 500, "range_index": 0}),
        // A range's execution: the SQL job fields are null (the SQL job's payloads are
        // checked by sql_jobs_reach_the_worker_range_execution_and_its_task).
        "$.sql" | "$.job" => Value::Null,
        "$.task.task_id" => json!("4f1c2d3e"),
        "$.filtered_task.task_id" => json!("oTUltX4IQMOUUVeiohTt8A:12345"),
        "$.before.total" => json!(1000),
        "$.before" | "$.after" => counts,
        "$.alias_promotion.previous_indices" | "$.filtered_alias_promotion.previous_indices" => {
            json!(["image-20260223000000"])
        }
        other => panic!("no sample for {other:?}: add what it holds to this test"),
    }
}

/// A Task's payload: `Parameters` with paths replaced by samples and `${…}` substituted.
fn payload(parameters: &Value, machine: &str) -> Value {
    match parameters {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| match key.strip_suffix(".$") {
                    Some(key) => (
                        key.to_string(),
                        sample(value.as_str().expect("path is a string"), machine),
                    ),
                    None => (key.clone(), payload(value, machine)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| payload(v, machine)).collect()),
        Value::String(s) if s.starts_with("${") => {
            let name = s
                .trim_start_matches("${")
                .trim_end_matches("StateMachineArn}");
            let machine = match name {
                "DataRefresh" => "stack-data-refresh",
                "FilteredIndex" => "stack-filtered-index",
                other => panic!("no sample for substitution {other}"),
            };
            json!(format!("{ARN_PREFIX}:stateMachine:{machine}"))
        }
        other => other.clone(),
    }
}

/// Parses `payload` with the step's input type (and its checks), as the step does.
fn parse_step_input(step: &str, payload: Value) -> Result<(), String> {
    let step = Step::from_name(step).ok_or_else(|| format!("no step named {step}"))?;
    step.check_input(payload).map_err(|e| e.message)
}

fn keys<T: Serialize>(value: T) -> BTreeSet<String> {
    match serde_json::to_value(value).expect("serialisable") {
        Value::Object(map) => map.keys().cloned().collect(),
        other => panic!("output is not an object: {other}"),
    }
}

/// The top-level fields of each step's output.
fn output_keys(step: &str) -> BTreeSet<String> {
    let worker_status: WorkerTaskStatus = serde_json::from_value(json!({
        "task_id": "t", "active": false, "model": "image", "target_index": "image-init",
        "table_name": "temp_import_image", "start_id": 1, "end_id": 2, "progress": 100.0,
        "rows_total": 2, "rows_processed": 2, "indexed": 2, "skipped": 0, "failed": 0,
        "rows_per_second": 1.0, "start_time": "2026-03-02T00:00:00Z", "finish_time": null,
        "error": null, "first_errors": []
    }))
    .expect("worker status sample");
    let health = IndexHealth {
        index: "image-init".into(),
        status: "green".into(),
        healthy: true,
        active_primary_shards: 1,
        active_shards: 1,
        relocating_shards: 0,
        initializing_shards: 0,
        unassigned_shards: 0,
        timed_out: false,
    };
    match step {
        "validate_input" => keys(sample_params()),
        "count_documents" => keys(BoundedCounts::new(
            &DocumentCounts::default(),
            SOURCES_BUDGET_BYTES,
        )),
        "copy_data" => keys(CopyProgress {
            cursor: None,
            rows_copied: 0,
            rows_scanned: 0,
            done: true,
            finish_deferred: false,
        }),
        "filter_tags" => keys(TagsFiltered { rows_changed: 0 }),
        "create_index" => keys(CreatedIndex {
            index: "image-init".into(),
            created: true,
        }),
        "plan_ranges" => keys(plan_ranges(Some((1, 2)), 2, 1).expect("plan")),
        "check_worker" => keys(WorkerHealth { healthy: true }),
        "start_reindex_task" => keys(StartedTask {
            task_id: "t".into(),
        }),
        // Polls either kind of worker task: a reindex range or a SQL job.
        "get_reindex_task" => {
            let sql_status: SqlTaskStatus = serde_json::from_value(json!({
                "task_id": "t", "kind": "sql", "active": false, "job": "reapply",
                "media_type": "image", "table_name": "temp_import_image", "parallelism": 4,
                "statements_total": 1, "statements_done": 1, "statements_failed": 0,
                "running": [], "waiting": null, "elapsed_seconds": 1.0,
                "start_time": "2026-03-02T00:00:00Z", "finish_time": null, "error": null,
                "result": null
            }))
            .expect("SQL task status sample");
            let mut both = keys(TaskProgress {
                status: worker_status,
                done: true,
            });
            both.extend(keys(SqlTaskProgress {
                status: sql_status,
                done: true,
            }));
            both
        }
        "finish_index" | "check_index_health" => keys(health),
        "start_filtered_reindex" => keys(FilteredReindexStarted {
            task_id: "n:1".into(),
            terms_count: 1,
            created_index: true,
        }),
        // Every outcome's fields: the machine reads `outcome` and `filtered_count`.
        "verify_filtered_index" => {
            let mut all = keys(FilteredVerification::Verified {
                main_count: 1,
                sensitive_in_main: 0,
                filtered_count: 1,
            });
            all.extend(keys(FilteredVerification::Rebuild {
                main_count: 1,
                sensitive_in_main: 0,
                expected: 1,
                filtered_count: 0,
                sensitive_in_filtered: 0,
                deleted: 0,
                reason: "r".into(),
            }));
            all
        }
        "get_es_task" => keys(TaskStatus {
            task_id: "n:1".into(),
            completed: true,
            total: 1,
            created: 1,
            updated: 0,
            deleted: 0,
            version_conflicts: 0,
            failures: 0,
            first_failures: vec![],
            error: None,
        }),
        "check_record_drop" => keys(DropReport {
            before: 1,
            after: 1,
            drop_pct: 0.0,
            overridden: false,
        }),
        "promote_table" => keys(PromotionReport {
            promoted: true,
            foreign_keys_repointed: 0,
            foreign_keys_not_valid: 0,
            orphans_deleted: 0,
            foreign_keys: vec![],
            rows: 0,
        }),
        "promote_alias" => keys(AliasPromotion {
            alias: "image".into(),
            index: "image-init".into(),
            previous_indices: vec![],
        }),
        "delete_indices" => keys(DeleteIndicesOutput {
            indices: DeletedIndices {
                deleted: vec![],
                missing: vec![],
            },
            failed_state: None,
        }),
        "report" => keys(
            RefreshReport::new(
                "image",
                "staging",
                "image-init",
                &DocumentCounts::default(),
                &DocumentCounts::default(),
                SOURCES_BUDGET_BYTES,
            )
            .0,
        ),
        "check_search_guard" => keys(SearchGuardReport {
            ran: true,
            live_index: Some("image-old".into()),
            new_index: "image-init".into(),
            min_ratio: 0.9,
            queries: vec![],
            overridden: false,
        }),
        "preflight_promotion" => keys(PreflightReport {
            indices: BTreeMap::new(),
            aliases: BTreeMap::new(),
            disks: vec![],
            high_watermark: "90%".into(),
        }),
        "promote_aliases" => keys(AliasesPromotion {
            promotions: vec![],
            previous_indices: vec![],
        }),
        "cleanup" => keys(CleanupOutput::default()),
        "forward_notification" => keys(Forwarded::default()),
        // Succeeds with `{}` or refuses with ConcurrencyConflict.
        "check_concurrency" => BTreeSet::new(),
        other => panic!("no output known for step {other}"),
    }
}

/// Every `$.a.b` path mentioned anywhere in a state (values, intrinsics, Choice variables).
fn referenced_paths(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(i) = rest.find("$.") {
                // `$$.Execution…` is the context object, not the state.
                let is_context = i > 0 && rest.as_bytes()[i - 1] == b'$';
                let tail = &rest[i + 2..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                    .unwrap_or(tail.len());
                if !is_context {
                    out.push(tail[..end].to_string());
                }
                rest = &tail[end..];
            }
        }
        Value::Array(items) => items.iter().for_each(|v| referenced_paths(v, out)),
        Value::Object(map) => map
            .iter()
            .filter(|(key, _)| key.as_str() != "Comment")
            .for_each(|(_, v)| referenced_paths(v, out)),
        _ => {}
    }
}

struct LambdaTask {
    state: String,
    step: String,
    payload: Value,
    result_slot: Option<String>,
    /// The fields a `ResultSelector` keeps of the step's output: what the slot then holds.
    selected: Option<BTreeMap<String, String>>,
}

fn lambda_tasks(file: &str, machine: &str) -> Vec<LambdaTask> {
    let definition = load(file);
    let mut tasks = Vec::new();
    for (name, state) in all_states(&definition) {
        let Some(step) = state["Resource"].as_str().and_then(step_of) else {
            continue;
        };
        let payload = match (&state["Parameters"], state["InputPath"].as_str()) {
            (Value::Object(_), _) => payload(&state["Parameters"], machine),
            // validate_input reads the execution input and the context apart
            // (`validate_input_gets_the_raw_input_and_the_context_apart`).
            (Value::Null, Some("$.request")) => json!({
                "input": {"media_type": "image", "environment": "staging", "index_suffix": "init"},
                "context": {
                    "execution_id": format!("{ARN_PREFIX}:execution:{machine}:run-1"),
                    "start_time": "2026-03-02T00:04:05.123Z"
                }
            }),
            other => panic!("{file} {name}: unexpected input {other:?}"),
        };
        let result_slot = state["ResultPath"]
            .as_str()
            .and_then(|p| p.strip_prefix("$."))
            .map(str::to_string);
        let selected = state["ResultSelector"].as_object().map(|selector| {
            selector
                .iter()
                .map(|(key, path)| {
                    let key = key.strip_suffix(".$").expect("ResultSelector takes paths");
                    let path = path.as_str().expect("a path").trim_start_matches("$.");
                    (key.to_string(), path.to_string())
                })
                .collect()
        });
        tasks.push(LambdaTask {
            state: name,
            step,
            payload,
            result_slot,
            selected,
        });
    }
    tasks
}

#[test]
fn every_lambda_task_payload_parses_with_its_step_input() {
    let mut checked = 0;
    let mut problems = Vec::new();
    for (file, machine) in MACHINES {
        for task in lambda_tasks(file, machine) {
            match Step::from_name(&task.step) {
                None => problems.push(format!(
                    "{file} \"{}\" calls {} but no such step is registered in functions/src/steps/mod.rs",
                    task.state, task.step
                )),
                Some(step) if step.function_logical_id() != format!("{}Function", camel(&task.step)) => {
                    problems.push(format!(
                        "{file} \"{}\": step {} is registered as {}",
                        task.state,
                        task.step,
                        step.function_logical_id()
                    ))
                }
                Some(_) => {}
            }
            if let Err(e) = parse_step_input(&task.step, task.payload.clone()) {
                problems.push(format!(
                    "{file} \"{}\": {} refuses what the state machine sends {}: {e}",
                    task.state, task.step, task.payload
                ));
            }
            checked += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(checked >= 25, "only {checked} Lambda tasks found");
}

#[test]
fn every_field_read_from_a_step_result_is_in_its_output() {
    for (file, machine) in MACHINES {
        let tasks = lambda_tasks(file, machine);
        // Result slot → the fields each step writing it leaves there (Pass/SDK tasks writing
        // the same slot excluded): its output, or what its ResultSelector keeps of it.
        let mut writers: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for task in &tasks {
            let Some(slot) = &task.result_slot else {
                continue;
            };
            let fields = match &task.selected {
                None => output_keys(&task.step),
                Some(selected) => {
                    for path in selected.values() {
                        assert!(
                            output_keys(&task.step).contains(path),
                            "{file} \"{}\" selects $.{path}, but {}'s output has no {path:?}",
                            task.state,
                            task.step
                        );
                    }
                    selected.keys().cloned().collect()
                }
            };
            writers
                .entry(slot.clone())
                .or_default()
                .entry(task.step.clone())
                .or_default()
                .extend(fields);
        }
        let definition = load(file);
        let states = all_states(&definition);
        let other_writers: BTreeSet<String> = states
            .values()
            .filter(|s| s["Resource"].as_str().and_then(step_of).is_none())
            .filter_map(|s| {
                s["ResultPath"]
                    .as_str()?
                    .strip_prefix("$.")
                    .map(str::to_string)
            })
            .collect();
        let mut paths = Vec::new();
        for state in states.values() {
            referenced_paths(state, &mut paths);
        }
        let mut checked = 0;
        for path in paths {
            let mut parts = path.split('.');
            let (Some(slot), Some(field)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Some(steps) = writers.get(slot) else {
                continue;
            };
            if other_writers.contains(slot) {
                continue;
            }
            for (step, fields) in steps {
                assert!(
                    fields.contains(field),
                    "{file} reads $.{path}, but what {step} leaves there has no {field:?} (it has {fields:?})"
                );
                checked += 1;
            }
        }
        assert!(checked > 5, "{file}: only {checked} result reads checked");
    }
}

/// `check_concurrency` → `CheckConcurrency`.
fn camel(step: &str) -> String {
    step.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Adding a step (docs/ARCHITECTURE.md "Adding a step"): registered in `steps!`, called by a
/// definition, its output known here. `tests/infra` checks the template's side.
#[test]
fn every_registered_step_is_called_and_its_output_known() {
    let mut called = BTreeSet::new();
    for (file, machine) in MACHINES {
        called.extend(lambda_tasks(file, machine).into_iter().map(|t| t.step));
    }
    for step in Step::ALL {
        // Invoked by the notification topic (SNS), not by a state machine.
        let by_the_topic = *step == Step::ForwardNotification;
        assert_eq!(
            called.contains(step.name()),
            !by_the_topic,
            "step {}: registered, and called by a definition unless the topic invokes it",
            step.name()
        );
        // Panics for a step whose output this test does not know.
        output_keys(step.name());
    }
}

#[test]
fn map_items_reach_the_worker_range_execution_and_its_reindex_task() {
    let definition = load("data-refresh.asl.json");
    let map = &all_states(&definition)["Reindex ranges"];
    assert_eq!(map["ItemsPath"], "$.plan.ranges");
    assert!(output_keys("plan_ranges").contains("ranges"));
    let item = serde_json::to_value(plan_ranges(Some((1, 9)), 9, 2).unwrap().ranges[0]).unwrap();
    // The Map's item, as its ItemSelector builds it.
    let iteration = json!({
        "range": item,
        "params": sample_params(),
        "execution_id": format!("{ARN_PREFIX}:execution:stack-data-refresh:run-1"),
    });
    assert_eq!(
        map["ItemSelector"],
        json!({"range.$": "$$.Map.Item.Value", "params.$": "$.params", "execution_id.$": "$$.Execution.Id"})
    );
    // The child's input, as the iteration's task builds it.
    let start = &map["ItemProcessor"]["States"][map["ItemProcessor"]["StartAt"].as_str().unwrap()];
    assert_eq!(
        start["Resource"],
        "arn:aws:states:::states:startExecution.sync:2"
    );
    let mut template = start["Parameters"]["Input"].clone();
    template
        .as_object_mut()
        .unwrap()
        .remove("AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$");
    let child_input = apply(&template, &iteration);
    assert_eq!(
        refresh_core::machines::root_execution_of(&child_input).as_deref(),
        iteration["execution_id"].as_str(),
        "cleanup finds the child by this field"
    );
    // The child's first state keeps range and params; its reindex task gets them.
    let child = load("worker-range.asl.json");
    let child_states = all_states(&child);
    let prepared = &child_states["Prepare range"]["Parameters"];
    assert_eq!(
        at(&child_input, prepared["range.$"].as_str().unwrap()),
        &item
    );
    assert_eq!(
        at(&child_input, prepared["params.$"].as_str().unwrap()),
        &sample_params()
    );
    let mut params = payload(
        &json!({"ip.$": "$.instance.ip", "params.$": "$.params"}),
        "stack-worker-range",
    );
    params["range"] = item;
    parse_step_input("start_reindex_task", params).unwrap();
}

#[test]
fn the_map_keeps_what_the_worker_range_execution_outputs() {
    let definition = load("data-refresh.asl.json");
    let map = &all_states(&definition)["Reindex ranges"];
    let start = &map["ItemProcessor"]["States"][map["ItemProcessor"]["StartAt"].as_str().unwrap()];
    let child = load("worker-range.asl.json");
    let (_, end) = all_states(&child)
        .into_iter()
        .find(|(_, s)| s["End"] == true && s["Parameters"].get("range.$").is_some())
        .expect("a range's execution ends in one state");
    // What the child outputs, from a finished task's status (get_reindex_task's output).
    let progress = json!({
        "task_id": "t", "active": false, "model": "image", "target_index": "image-init",
        "table_name": "temp_import_image", "start_id": 1, "end_id": 500, "progress": 100.0,
        "rows_total": 500, "rows_processed": 500, "indexed": 490, "skipped": 10, "failed": 0,
        "rows_per_second": 1000.0, "start_time": "2026-03-02T00:00:00Z",
        "finish_time": "2026-03-02T00:00:01Z", "error": null, "first_errors": [], "done": true
    });
    for field in end["Parameters"]["task"].as_object().unwrap().values() {
        let field = field.as_str().unwrap().trim_start_matches("$.progress.");
        assert!(output_keys("get_reindex_task").contains(field), "{field}");
    }
    let state = json!({
        "range": {"start_id": 1, "end_id": 500, "range_index": 0},
        "attempt": 2, "worker": {"instance_id": "i-0123456789abcdef0"}, "progress": progress
    });
    let output = apply(&end["Parameters"], &state);
    let described = json!({"ExecutionArn": format!("{ARN_PREFIX}:execution:stack-worker-range:x"), "Output": output});
    let kept = apply(&start["ResultSelector"], &described);
    for (key, value) in kept.as_object().unwrap() {
        assert!(
            !value.is_null(),
            "the Map keeps {key}, which the child does not output"
        );
    }
    assert_eq!(kept["task"]["indexed"], 490);
    assert_eq!(kept["attempt"], 2);
}

#[test]
fn cleanup_admission_states_exist_in_the_definitions() {
    let mut all = BTreeSet::new();
    for (file, _) in TOP_MACHINES {
        all.extend(all_states(&load(file)).into_keys());
    }
    for name in ADMISSION_STATES {
        assert!(
            all.contains(name),
            "cleanup treats {name:?} as admission, but no definition has it"
        );
    }
    // Whatever follows the concurrency check creates things: it must not count as admission.
    for (file, _) in TOP_MACHINES {
        let states = all_states(&load(file));
        let mut next = states["Check concurrency"]["Next"].as_str().unwrap();
        // A notification in between creates nothing (and is admission): look past it.
        while states[next]["Resource"] == "arn:aws:states:::sns:publish" {
            next = states[next]["Next"].as_str().unwrap();
        }
        assert!(!ADMISSION_STATES.contains(&next), "{file}: {next}");
    }
    // And the list is exactly what each machine passes before its first state that may
    // create something: from StartAt through the validation and concurrency Tasks (and their
    // wait loop and refusal), stopping at any other Task.
    for (file, _) in TOP_MACHINES {
        let definition = load(file);
        let states = all_states(&definition);
        let mut admission = BTreeSet::new();
        let mut todo = vec![definition["StartAt"].as_str().unwrap().to_string()];
        while let Some(name) = todo.pop() {
            let state = &states[&name];
            // Notifications create nothing.
            let creates = state["Type"] == "Task"
                && state["Resource"] != "arn:aws:states:::sns:publish"
                && !["Validate input", "Check concurrency"].contains(&name.as_str());
            if creates || !admission.insert(name.clone()) {
                continue;
            }
            let mut next: Vec<&Value> = vec![&state["Next"], &state["Default"]];
            next.extend(
                state["Choices"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| &c["Next"]),
            );
            next.extend(
                state["Catch"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| &c["Next"]),
            );
            todo.extend(
                next.into_iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string),
            );
        }
        let listed: BTreeSet<String> = ADMISSION_STATES
            .iter()
            .filter(|name| states.contains_key(**name))
            .map(|name| name.to_string())
            .collect();
        assert_eq!(
            admission, listed,
            "{file}: admission states drifted from machines.rs"
        );
    }
}

/// The execution input reaches validate_input untouched, beside the context: nothing before
/// it (no `States.JsonMerge`, no path into the input) can fail on an input that is not an
/// object, or let an input key overwrite `execution_id` / `start_time`.
#[test]
fn validate_input_gets_the_raw_input_and_the_context_apart() {
    for (file, _) in TOP_MACHINES {
        let definition = load(file);
        let states = all_states(&definition);
        let prepare = &states["Prepare input"];
        assert_eq!(definition["StartAt"], "Prepare input", "{file}");
        assert_eq!(prepare["Parameters"]["input.$"], "$", "{file}");
        assert_eq!(
            prepare["Parameters"]["context"],
            json!({"execution_id.$": "$$.Execution.Id", "start_time.$": "$$.Execution.StartTime"}),
            "{file}"
        );
        let validate = &states["Validate input"];
        assert_eq!(validate["InputPath"], "$.request", "{file}");
        assert_eq!(validate["Parameters"], Value::Null, "{file}");
        let builders: Vec<&String> = states
            .iter()
            .filter(|(_, s)| s["ResultPath"] == "$.request")
            .map(|(name, _)| name)
            .collect();
        assert_eq!(builders, ["Add execution context"], "{file}");
        assert_eq!(
            states["Add execution context"]["Parameters"],
            json!({"input.$": "$.input", "context.$": "$.context"}),
            "{file}"
        );
        // The raw input is read in exactly that one place.
        let text = definition.to_string();
        assert_eq!(text.matches("$.input").count(), 1, "{file}");
        assert!(!text.contains("JsonMerge"), "{file}");
    }
    // What validate_input then refuses, by name, instead of the machine failing with
    // States.Runtime or silently overwriting the context.
    let context = json!({"execution_id": format!("{ARN_PREFIX}:execution:m:run-1"),
        "start_time": "2026-03-02T00:04:05Z"});
    for (input, says) in [
        (
            json!(["image"]),
            "execution input must be a JSON object, got an array",
        ),
        (
            json!("image"),
            "execution input must be a JSON object, got a string",
        ),
        (
            json!({"media_type": "image", "environment": "staging", "start_time": "2020-01-01T00:00:00Z"}),
            "start_time: ",
        ),
        (
            json!({"media_type": "image", "environment": "staging", "execution_id": "x"}),
            "execution_id: ",
        ),
    ] {
        let err = parse_step_input(
            "validate_input",
            json!({"input": input, "context": context}),
        )
        .unwrap_err();
        assert!(err.starts_with(says), "{input}: {err}");
    }
}

#[test]
fn the_contract_check_fails_on_drift() {
    // A renamed field in what the state machine sends must be caught.
    let mut drifted = payload(
        &json!({"params.$": "$.params", "before": {"total.$": "$.before.total"}, "new_index.$": "$.new_index.index"}),
        "stack-data-refresh",
    );
    parse_step_input("check_record_drop", drifted.clone()).unwrap();
    drifted["new_index_name"] = drifted["new_index"].take();
    drifted.as_object_mut().unwrap().remove("new_index");
    assert!(parse_step_input("check_record_drop", drifted).is_err());
    assert!(!output_keys("get_reindex_task").contains("finished"));
}

#[test]
fn sql_jobs_reach_the_worker_range_execution_and_its_task() {
    let definition = load("data-refresh.asl.json");
    let child = load("worker-range.asl.json");
    let child_states = all_states(&child);
    let prepared = &child_states["Prepare SQL job"]["Parameters"];
    let (_, sql_end) = all_states(&child)
        .into_iter()
        .find(|(_, s)| s["End"] == true && s["Parameters"].get("sql.$").is_some())
        .expect("a SQL job's execution ends in one state");
    let mut jobs = Vec::new();
    for (name, state) in all_states(&definition) {
        let Some(sql) = state["Parameters"]["Input"].get("sql") else {
            continue;
        };
        jobs.push(sql["job"].as_str().unwrap().to_string());
        assert_eq!(
            state["Parameters"]["StateMachineArn"], "${WorkerRangeStateMachineArn}",
            "{name}"
        );
        // Deterministic name: a retried start joins the running child.
        let child_name = state["Parameters"]["Name.$"].as_str().unwrap();
        assert!(child_name.contains("$$.Execution.Id"), "{name}");
        // The child's input, with this execution's id where the definition reads it.
        let mut template = state["Parameters"]["Input"].clone();
        let input = template.as_object_mut().unwrap();
        input.remove("AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$");
        assert_eq!(
            input.remove("root_execution_id.$"),
            Some(json!("$$.Execution.Id"))
        );
        let mut child_input = apply(&template, &json!({"params": sample_params()}));
        child_input["root_execution_id"] =
            json!(format!("{ARN_PREFIX}:execution:stack-data-refresh:run-1"));
        assert_eq!(
            refresh_core::machines::root_execution_of(&child_input).as_deref(),
            child_input["root_execution_id"].as_str(),
            "cleanup finds the child by this field"
        );
        // The SQL job's Pass state; the worker's start and poll get the job.
        let prepared_state = apply(
            &json!({"sql.$": prepared["sql.$"], "job.$": prepared["job.$"], "params.$": prepared["params.$"]}),
            &child_input,
        );
        let start = json!({"ip": "127.0.0.2", "params": prepared_state["params"],
                           "range": prepared["range"], "sql": prepared_state["sql"]});
        parse_step_input("start_reindex_task", start).unwrap_or_else(|e| panic!("{name}: {e}"));
        let poll = json!({"ip": "127.0.0.2", "task_id": "t", "params": prepared_state["params"],
                          "job": prepared_state["job"]});
        parse_step_input("get_reindex_task", poll).unwrap_or_else(|e| panic!("{name}: {e}"));
        // What the parent keeps is what the child's SQL end outputs.
        let output: BTreeSet<String> = sql_end["Parameters"]
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.trim_end_matches(".$").to_string())
            .collect();
        for path in state["ResultSelector"].as_object().unwrap().values() {
            if let Some(field) = path.as_str().unwrap().strip_prefix("$.Output.") {
                assert!(
                    output.contains(field),
                    "{name} keeps {field}, which the child does not output"
                );
            }
        }
    }
    jobs.sort();
    assert_eq!(jobs, ["finish_copy", "reapply", "validate_foreign_keys"]);
}
