//! No state's input or output may exceed 256 KiB (Step Functions' payload quota; LocalStack
//! checks it too): a production catalog has thousands of sources and a reindex up to 64
//! ranges. Each result is serialised as the state keeps it, after the definition's
//! `ResultSelector` and at its `ResultPath`, and the data refresh state is built with every
//! slot the definition writes, each at its largest, to be measured whole. Run with
//! `--nocapture` to see the sizes.

use refresh_core::es::{
    AliasPromotion, CreatedIndex, DeletedIndices, DocumentCounts, FilteredReindexStarted,
    FilteredVerification, IndexHealth, TaskStatus,
};
use refresh_core::guard::DropReport;
use refresh_core::pg::copy::{CopyProgress, MAX_SESSIONS};
use refresh_core::ranges::plan_ranges;
use refresh_core::report::{BoundedCounts, GuardChecks, RefreshReport, SOURCES_BUDGET_BYTES};
use refresh_functions::steps::cleanup::CleanupOutput;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use support::{all_states, apply, load};

mod support;

/// Step Functions' quota for a state's input or output, a task's result and an execution's
/// input or output.
const PAYLOAD_LIMIT: usize = 256 * 1024;
const SOURCES: usize = 5_000;
const RANGES: u32 = 64;
/// The longest `Cause` Step Functions keeps for an error.
const CAUSE_LIMIT: usize = 32_768;

fn size<T: Serialize>(value: &T) -> usize {
    serde_json::to_string(value).expect("serialisable").len()
}

/// Source names as a large catalog has them: providers with many sub-collections, long names.
fn source_name(i: usize) -> String {
    const STEMS: [&str; 8] = [
        "smithsonian_national_museum_of_natural_history",
        "flickr",
        "wikimedia_commons",
        "metropolitan_museum_of_art",
        "inaturalist_research_grade_observations",
        "europeana_collections",
        "science_museum_group_collection",
        "nypl",
    ];
    format!("{}_{i:05}", STEMS[i % STEMS.len()])
}

/// Counts behind the live alias and in the new index: every source changed (the worst case
/// for the report), counts of nine digits.
fn counts(sources: usize) -> (DocumentCounts, DocumentCounts) {
    let mut before = DocumentCounts::default();
    let mut after = DocumentCounts::default();
    for i in 0..sources {
        let n = 100_000_000 + 7_919 * i as u64;
        before.by_source.insert(source_name(i), n);
        after
            .by_source
            .insert(source_name(i), n - (i as u64 % 997) * 13);
    }
    before.total = before.by_source.values().sum();
    after.total = after.by_source.values().sum();
    (before, after)
}

fn report(sources: usize) -> RefreshReport {
    let (before, after) = counts(sources);
    RefreshReport::new(
        "image",
        "production",
        "image-20260302000405",
        &before,
        &after,
        SOURCES_BUDGET_BYTES,
    )
    .0
}

fn data_refresh() -> Value {
    load("data-refresh.asl.json")
}

fn state<'a>(states: &'a BTreeMap<String, Value>, name: &str) -> &'a Value {
    states
        .get(name)
        .unwrap_or_else(|| panic!("no state {name:?} in the definition"))
}

#[test]
fn the_count_before_fits_and_the_state_keeps_only_its_total() {
    let (before, _) = counts(SOURCES);
    let full = size(&before);
    let result = BoundedCounts::new(&before, SOURCES_BUDGET_BYTES);
    let states = all_states(&data_refresh());
    let kept = apply(
        &state(&states, "Count documents before")["ResultSelector"],
        &serde_json::to_value(&result).unwrap(),
    );
    println!(
        "count_documents, {SOURCES} sources: every source {full} B, the task result {} B ({} sources left out), in the state {} B",
        size(&result),
        result.omitted_sources,
        size(&kept)
    );
    assert!(
        full > 3 * SOURCES_BUDGET_BYTES,
        "the test data is large enough to matter ({full} B)"
    );
    assert!(
        size(&result) <= SOURCES_BUDGET_BYTES + 256,
        "{}",
        size(&result)
    );
    assert_eq!(kept, json!({"total": before.total, "sources": SOURCES}));
    // The drop guard reads what is kept.
    assert!(state(&states, "Check record drop")
        .to_string()
        .contains("$.before.total"));
}

#[test]
fn the_report_of_five_thousand_sources_fits_and_says_what_it_left_out() {
    let report = report(SOURCES);
    let bytes = size(&report);
    println!(
        "report, {SOURCES} sources: {bytes} B, {} sources in by_source, {} left out",
        report.by_source.len(),
        report.omitted_sources
    );
    assert!(bytes <= SOURCES_BUDGET_BYTES + 1024, "{bytes}");
    assert!(bytes <= PAYLOAD_LIMIT);
    assert_eq!(report.sources, SOURCES);
    assert_eq!(report.omitted_sources, SOURCES - report.by_source.len());
    assert!(report.by_source.len() > 500, "{}", report.by_source.len());
    // Totals and the omitted sums reconcile with the rows kept.
    let kept_before: u64 = report.by_source.values().map(|r| r.before).sum();
    assert_eq!(kept_before + report.omitted.before, report.total_before);
    let kept_after: u64 = report.by_source.values().map(|r| r.after).sum();
    assert_eq!(kept_after + report.omitted.after, report.total_after);
    // A catalog of a few hundred sources is reported whole.
    let small = self::report(300);
    assert_eq!((small.by_source.len(), small.omitted_sources), (300, 0));
}

#[test]
fn a_plan_of_sixty_four_ranges_and_the_reindex_map_output_fit() {
    let plan = plan_ranges(Some((1, 900_000_000)), 880_000_000, RANGES).expect("plan");
    assert_eq!(plan.ranges.len(), RANGES as usize);
    let reindex = reindex_output();
    println!(
        "plan, {RANGES} ranges: {} B; reindex Map output, {RANGES} ranges: {} B",
        size(&plan),
        size(&reindex)
    );
    assert!(size(&plan) <= 8 * 1024);
    assert!(size(&reindex) <= 48 * 1024);
}

/// What the Map keeps of each worker-range execution, for `RANGES` ranges: the child's last
/// state applied to its state at its largest, then the parent's ResultSelector.
fn reindex_output() -> Value {
    let child = load("worker-range.asl.json");
    let (_, end) = all_states(&child)
        .into_iter()
        .find(|(_, s)| s["End"] == true)
        .expect("the child ends in one state");
    let states = all_states(&data_refresh());
    let task = state(&states, "Index range on a worker");
    let plan = plan_ranges(Some((1, 9_000_000_000)), 9_000_000_000, RANGES).expect("plan");
    let items = plan
        .ranges
        .iter()
        .map(|range| {
            let child_state = json!({
                "range": range,
                "attempt": 3,
                "worker": {"instance_id": "i-0123456789abcdef0"},
                "progress": {
                    "task_id": "5f0c8f6e-0b7a-4a5e-9e4e-5d3c2b1a0f9e", "active": false,
                    "model": "image", "target_index": "image-20260302000405",
                    "table_name": "temp_import_image", "start_id": range.start_id,
                    "end_id": range.end_id, "progress": 100.0, "rows_total": 140_625_000,
                    "rows_processed": 140_625_000, "indexed": 140_600_000, "skipped": 25_000,
                    "failed": 0, "rows_per_second": 13_512.123_456_789,
                    "start_time": "2026-03-02T00:04:05.123456789Z",
                    "finish_time": "2026-03-02T03:04:05.123456789Z", "error": null,
                    "first_errors": vec!["x".repeat(2_000); 10], "done": true
                }
            });
            let output = apply(&end["Parameters"], &child_state);
            let described = json!({
                "ExecutionArn": format!(
                    "arn:aws:states:us-east-1:123456789012:execution:a-long-stack-name-worker-range:image-0123456789abcdef0123456789abcdef-range-{}",
                    range.range_index
                ),
                "Input": {}, "Output": output, "Status": "SUCCEEDED"
            });
            apply(&task["ResultSelector"], &described)
        })
        .collect();
    Value::Array(items)
}

/// Every `ResultPath` the data refresh definition's top level writes (a Map's item processor
/// writes into its iteration, not the run's state).
fn top_level_slots(definition: &Value) -> BTreeSet<String> {
    let mut slots = BTreeSet::new();
    for state in definition["States"].as_object().expect("States").values() {
        let mut paths = vec![&state["ResultPath"]];
        paths.extend(
            state["Catch"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| &c["ResultPath"]),
        );
        for path in paths.into_iter().filter_map(Value::as_str) {
            slots.insert(path.trim_start_matches("$.").to_string());
        }
    }
    slots
}

/// An error as a Catch records it, with the longest cause Step Functions keeps.
fn caught_error() -> Value {
    json!({"Error": "WorkerTaskFailed", "Cause": "c".repeat(CAUSE_LIMIT)})
}

/// The search guard's report with 50 queries of long names.
fn search_guard() -> Value {
    json!({
        "ran": true, "live_index": "image-20260223000405", "new_index": "image-20260302000405",
        "min_ratio": 0.9, "overridden": false,
        "queries": (0..50).map(|i| json!({"name": format!("query {i} {}", "q".repeat(100)),
            "live_hits": u64::MAX, "new_hits": u64::MAX, "ratio": 1.0, "passed": true})).collect::<Vec<_>>()
    })
}

/// The pre-flight's report on a 100-node cluster.
fn preflight() -> Value {
    json!({
        "indices": {"image-20260302000405": "green", "image-20260302000405-filtered": "green"},
        "aliases": {"image": "image-20260223000405", "image-filtered": "image-20260223000405-filtered"},
        "disks": (0..100).map(|i| json!({"node": format!("node-{i:03}-{}", "n".repeat(40)),
            "used_pct": 89.9, "available_bytes": u64::MAX})).collect::<Vec<_>>(),
        "high_watermark": "90%"
    })
}

/// The largest value each slot of the data refresh state can hold.
fn largest(slot: &str) -> Value {
    let params = json!({
        "media_type": "image", "environment": "production", "index_suffix": "20260302000405",
        "new_index": "image-20260302000405", "new_filtered_index": "image-20260302000405-filtered",
        "temp_table": "temp_import_image", "skip_copy": false, "allow_concurrent": false,
        "wait_if_busy": true, "max_record_drop_pct": 10.0, "override_record_drop": false,
        "row_limit": null, "worker_count": RANGES, "launch_template": "a-long-stack-name-indexer-worker-production"
    });
    let health = serde_json::to_value(IndexHealth {
        index: "image-20260302000405-filtered".into(),
        status: "green".into(),
        healthy: true,
        active_primary_shards: 18,
        active_shards: 36,
        relocating_shards: 0,
        initializing_shards: 0,
        unassigned_shards: 0,
        timed_out: false,
    })
    .unwrap();
    let promotion = serde_json::to_value(AliasPromotion {
        alias: "image-filtered".into(),
        index: "image-20260302000405-filtered".into(),
        previous_indices: vec!["image-20260223000405-filtered".into()],
    })
    .unwrap();
    let names = |n: usize, what: &str| -> Vec<String> {
        (0..n)
            .map(|i| format!("{what}_{i:02}_{}", "x".repeat(50)))
            .collect()
    };
    let value = match slot {
        "request" => json!({
            "input": {"media_type": "image", "environment": "production", "wait_if_busy": true,
                      "index_suffix": "x".repeat(200), "max_record_drop_pct": 10.0},
            "context": {"execution_id": "arn:aws:states:us-east-1:123456789012:execution:a-long-stack-name-data-refresh:".to_string() + &"n".repeat(80),
                        "start_time": "2026-03-02T00:04:05.123Z"}
        }),
        "params" => params,
        "error" | "cleanup_error" | "alarm_restore_error" => {
            caught_error()
        }
        "alias_attempts" => json!({"count": 99_999}),
        "alias_finish" => json!({"media_type": "image", "environment": "production",
                                 "index": "image-".to_string() + &"x".repeat(200),
                                 "filtered_index": "image-".to_string() + &"x".repeat(200) + "-filtered"}),
        "search_guard" => search_guard(),
        "preflight" => preflight(),
        "reindex_summary" => json!({
            "ranges": (0..RANGES).collect::<Vec<_>>(),
            "attempts": vec![3; RANGES as usize],
            "indexed": vec![u64::MAX; RANGES as usize],
        }),
        "deleted_old_indices" => serde_json::to_value(DeletedIndices {
            deleted: vec!["image-20260223000405".into(), "image-20260223000405-filtered".into()],
            missing: vec![],
        })
        .unwrap(),
        "before" => {
            let (before, _) = counts(SOURCES);
            let states = all_states(&data_refresh());
            apply(
                &state(&states, "Count documents before")["ResultSelector"],
                &serde_json::to_value(BoundedCounts::new(&before, SOURCES_BUDGET_BYTES)).unwrap(),
            )
        }
        "tag_filter" => json!({"rows_changed": 880_000_000u64}),
        "copy" => {
            // Parsed as the step's type, so the sample keeps its shape.
            let progress: CopyProgress = serde_json::from_value(json!({
                "cursor": {"rows_copied": 880_000_000u64, "rows_scanned": 900_000_000u64,
                           "rows_done": true, "lanes": MAX_SESSIONS, "lanes_done": MAX_SESSIONS},
                "rows_copied": 880_000_000u64, "rows_scanned": 900_000_000u64, "done": true
            }))
            .expect("a copy_data output");
            serde_json::to_value(progress).unwrap()
        }
        "new_index" | "filtered_index" => serde_json::to_value(CreatedIndex {
            index: "image-20260302000405-filtered".into(),
            created: true,
        })
        .unwrap(),
        "plan" => serde_json::to_value(
            plan_ranges(Some((1, 9_000_000_000)), 9_000_000_000, RANGES).unwrap(),
        )
        .unwrap(),
        "alarms.actions" => json!({"disabled": true}),
        "conflict_waits" | "new_index_health_checks" | "filtered_reindex_polls"
        | "filtered_index_health_checks" => json!({"count": 288}),
        "reindex" => reindex_output(),
        "finished_new_index" | "health_new_index" | "finished_filtered_index"
        | "health_filtered_index" => health,
        "filtered_task" => serde_json::to_value(FilteredReindexStarted {
            task_id: "oTUltX4IQMOUUVeiohTt8A:123456789".into(),
            terms_count: 5_000,
            created_index: true,
        })
        .unwrap(),
        "filtered_progress" => serde_json::to_value(TaskStatus {
            task_id: "oTUltX4IQMOUUVeiohTt8A:123456789".into(),
            completed: true,
            total: 880_000_000,
            created: 879_000_000,
            updated: 0,
            deleted: 0,
            version_conflicts: 0,
            failures: 0,
            first_failures: vec!["f".repeat(1_000); 10],
            error: None,
        })
        .unwrap(),
        "record_drop" => serde_json::to_value(DropReport {
            before: 880_000_000,
            after: 879_000_000,
            drop_pct: 0.113_636_363_636,
            overridden: false,
        })
        .unwrap(),
        "report" => {
            let mut report = report(SOURCES);
            report.guards = GuardChecks {
                record_drop: Some(DropReport {
                    before: 880_000_000,
                    after: 879_000_000,
                    drop_pct: 0.113_636_363_636,
                    overridden: false,
                }),
                search: serde_json::from_value(search_guard()).ok(),
                preflight: serde_json::from_value(preflight()).ok(),
            };
            assert!(report.guards.search.is_some() && report.guards.preflight.is_some());
            serde_json::to_value(report).unwrap()
        }
        "table_promotion" => json!({
            "promoted": true, "foreign_keys_repointed": 10, "orphans_deleted": 1_000_000u64,
            "foreign_keys": names(10, "fk").iter().map(|n| json!({"table": format!("public.{n}"), "name": n, "definition": format!("FOREIGN KEY (identifier) REFERENCES image(identifier) -- {n}")})).collect::<Vec<_>>(),
            "rows": 880_000_000u64
        }),
        "alias_promotion" => json!({"promotions": [promotion.clone(), promotion.clone()],
                                    "previous_indices": ["image-20260223000405", "image-20260223000405-filtered"]}),
        "filtered_alias_promotion" => promotion,
        "filtered_verification" => serde_json::to_value(FilteredVerification::Rebuild {
            main_count: u64::MAX,
            sensitive_in_main: u64::MAX,
            expected: u64::MAX,
            filtered_count: u64::MAX,
            sensitive_in_filtered: u64::MAX,
            deleted: u64::MAX,
            reason: format!("{} sensitive documents in the filtered index, more than the {} the gate deletes", u64::MAX, u64::MAX),
        })
        .unwrap(),
        "deleted_old_index" | "deleted_old_filtered_index" | "unverified_filtered_index" => serde_json::to_value(DeletedIndices {
            deleted: vec!["image-20260223000405-filtered".into()],
            missing: vec![],
        })
        .unwrap(),
        "cleanup" => serde_json::to_value(CleanupOutput {
            stopped_range_executions: (0..RANGES)
                .map(|i| format!("arn:aws:states:us-east-1:123456789012:execution:a-long-stack-name-worker-range:image-0123456789abcdef0123456789abcdef-range-{i}"))
                .collect(),
            terminated_instances: (0..3 * RANGES).map(|i| format!("i-{i:017}")).collect(),
            dropped_temp_table: true,
            dropped_fdw_server: true,
            deleted_indices: vec!["image-20260302000405".into(), "image-20260302000405-filtered".into()],
            cancelled_tasks: vec!["oTUltX4IQMOUUVeiohTt8A:123456789".into()],
            kept_indices: vec![],
            skipped: Some("s".repeat(300)),
            failed_state: Some("Validate foreign keys on a worker".into()),
        })
        .unwrap(),
        // A SQL job's worker-range execution: the worker's final status with the job's report.
        "finish_copy" => sql_job("finish_copy", json!({"audioset_rows": 9_000_000u64, "primary_key_added": true})),
        "constraints" => sql_job(
            "reapply",
            json!({
                "indexes": names(40, "image_index").iter().map(|n| json!({"live_name": n, "temp_name": format!("{n}_temp"), "action": "created"})).collect::<Vec<_>>(),
                "constraints": names(20, "image_constraint").iter().map(|n| json!({"live_name": n, "temp_name": format!("{n}_temp"), "action": "created"})).collect::<Vec<_>>(),
                "dropped": names(10, "temp_index"), "done": true, "analyzed": true
            }),
        ),
        // The job's report, each key with its error (16 referencing keys: the image table has
        // a handful), or `{failed: true}` when the job failed (its error is at `$.error`).
        "foreign_keys" => {
            let keys: Vec<Value> = (0..16)
                .map(|i| json!({"name": format!("api_imagedecision_media_obj_id_fk_image_identifier_{i:04}"),
                                "table": "api_imagedecision", "already_valid": false,
                                "error": "e".repeat(500), "orphans_deleted": 1_000_000u64,
                                "seconds": 3600.0, "validated": false}))
                .collect();
            sql_job("validate_foreign_keys", json!({"failed": 16, "validated": 0,
                                                    "orphans_deleted": 16_000_000u64,
                                                    "foreign_keys": keys}))
        }
        other => panic!("no largest value for $.{other}: add what the slot can hold to this test"),
    };
    value
}

/// What a SQL-job state keeps of its worker-range execution: `{execution_arn, attempt,
/// instance_id, result}`, the result being the worker's final status with `report`.
fn sql_job(job: &str, report: Value) -> Value {
    json!({
        "execution_arn": format!("arn:aws:states:us-east-1:123456789012:execution:a-long-stack-name-worker-range:image-0123456789abcdef0123456789abcdef-{job}"),
        "attempt": 3, "instance_id": "i-0123456789abcdef0",
        "result": {"task_id": "0123456789abcdef0123456789abcdef", "kind": "sql", "active": false,
                   "done": true, "job": job, "media_type": "image", "table_name": "temp_import_image",
                   "parallelism": 16, "statements_total": 400, "statements_done": 400,
                   "statements_failed": 0, "running": [], "waiting": null,
                   "elapsed_seconds": 86_400.0, "start_time": "2026-03-02T00:00:00.000Z",
                   "finish_time": "2026-03-03T00:00:00.000Z", "error": null, "result": report}
    })
}

/// The state as `Prepare input` makes it (settings, alarms, counters), with `alarm_names`.
fn prepared(alarm_names: usize) -> Value {
    let names: Vec<String> = (0..alarm_names)
        .map(|i| format!("alarm-{i:03}-{}", "a".repeat(40)))
        .collect();
    json!({
        "input": {"media_type": "image", "environment": "production", "wait_if_busy": true},
        "settings": {"poll_seconds": 300, "check_seconds": 15, "conflict_wait_seconds": 600,
                     "conflict_max_waits": 144, "index_health_max_checks": 120, "reindex_max_polls": 288},
        "alarms": {"names": names, "count": alarm_names, "actions": {"disabled": false}},
        "conflict_waits": {"count": 144}, "new_index_health_checks": {"count": 120},
        "filtered_reindex_polls": {"count": 288}, "filtered_index_health_checks": {"count": 120}
    })
}

fn put(state: &mut Value, slot: &str, value: Value) {
    let mut target = state;
    let mut parts = slot.split('.').peekable();
    while let Some(part) = parts.next() {
        let object: &mut Map<String, Value> = target.as_object_mut().expect("an object");
        if parts.peek().is_none() {
            object.insert(part.to_string(), value);
            return;
        }
        target = object.entry(part).or_insert_with(|| json!({}));
    }
}

#[test]
fn the_whole_data_refresh_state_fits_with_every_slot_at_its_largest() {
    let definition = data_refresh();
    // Twenty alarm names: the AlarmNames parameter is one comma-separated string.
    let mut whole = prepared(20);
    let slots = top_level_slots(&definition);
    assert!(slots.len() > 20, "{slots:?}");
    let mut sizes = Vec::new();
    for slot in &slots {
        let value = largest(slot);
        sizes.push((size(&value), slot.clone()));
        put(&mut whole, slot, value);
    }
    sizes.sort_by(|a, b| b.cmp(a));
    let total = size(&whole);
    println!("data refresh state with every slot at its largest: {total} B of {PAYLOAD_LIMIT}; largest slots: {:?}", &sizes[..6]);
    assert!(total <= PAYLOAD_LIMIT, "{total} B: {sizes:?}");
    // The execution output is the report alone.
    let output = size(&largest("report"));
    println!("execution output (the report): {output} B");
    assert!(output <= PAYLOAD_LIMIT);
}

#[test]
fn the_whole_state_check_fails_on_a_state_that_keeps_every_source() {
    // What the state held before: both counts with every source, and the report with all of
    // them. The check above must be able to fail.
    let (before, after) = counts(SOURCES);
    let (_, all) = RefreshReport::new(
        "image",
        "production",
        "image-x",
        &before,
        &after,
        usize::MAX,
    );
    let mut whole = prepared(0);
    put(&mut whole, "before", serde_json::to_value(&before).unwrap());
    put(&mut whole, "after", serde_json::to_value(&after).unwrap());
    put(&mut whole, "report", json!({"by_source": all}));
    let total = size(&whole);
    println!("the state with every source kept: {total} B");
    assert!(total > PAYLOAD_LIMIT);
}

#[test]
fn a_worker_range_execution_input_and_state_fit() {
    let definition = data_refresh();
    let states = all_states(&definition);
    let task = state(&states, "Index range on a worker");
    let iteration = json!({
        "range": {"start_id": 1, "end_id": 9_000_000_000u64, "range_index": 63},
        "params": largest("params"),
        "execution_id": "arn:aws:states:us-east-1:123456789012:execution:a-long-stack-name-data-refresh:".to_string() + &"n".repeat(80),
    });
    let mut template = task["Parameters"]["Input"].clone();
    let context = template
        .as_object_mut()
        .unwrap()
        .remove("AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$");
    assert!(context.is_some());
    let mut input = apply(&template, &iteration);
    input["AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"] = iteration["execution_id"].clone();
    // The child's state at its largest: the input, settings and counters, the described
    // instance, the worker's status with its ten longest errors, and an error with the longest cause.
    let mut child = input.clone();
    child["settings"] = json!({"poll_seconds": 300, "check_seconds": 15, "instance_max_checks": 40,
        "worker_health_max_checks": 40, "reindex_max_polls": 288, "range_max_attempts": 3});
    child["instance"] = json!({"described": {"x": "i".repeat(16 * 1024)}});
    child["progress"] = json!({"first_errors": vec!["e".repeat(2_000); 10]});
    child["previous_error"] = caught_error();
    child["attempt_error"] = caught_error();
    child["terminate_error"] = caught_error();
    println!(
        "worker-range execution input: {} B; its state at its largest: {} B",
        size(&input),
        size(&child)
    );
    assert!(size(&input) <= 8 * 1024);
    assert!(size(&child) <= PAYLOAD_LIMIT);
}
