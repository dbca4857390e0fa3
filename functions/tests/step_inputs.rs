//! Step inputs refuse what the state machines never send: unknown fields, tampered `P`,
//! addresses that are not IPs, names outside the media's indices.

use refresh_core::error::ErrorKind;
use refresh_functions::parse_input;
use refresh_functions::steps::check_concurrency::CheckConcurrencyInput;
use refresh_functions::steps::check_worker::CheckWorkerInput;
use refresh_functions::steps::copy_data::CopyDataInput;
use refresh_functions::steps::params::{IndexInput, ParamsInput};
use refresh_functions::steps::start_reindex_task::StartReindexTaskInput;
use serde_json::{json, Value};

fn params() -> Value {
    json!({
        "media_type": "audio", "environment": "production", "index_suffix": "20260302000405",
        "new_index": "audio-20260302000405", "new_filtered_index": "audio-20260302000405-filtered",
        "temp_table": "temp_import_audio", "skip_copy": false, "allow_concurrent": false, "wait_if_busy": false,
        "max_record_drop_pct": 10.0, "override_record_drop": false, "row_limit": null,
        "worker_count": 6, "launch_template": "stack-indexer-worker-production"
    })
}

#[test]
fn start_reindex_task_takes_the_map_item() {
    let input: StartReindexTaskInput = parse_input(json!({
        "ip": "127.0.0.2", "params": params(),
        "range": {"start_id": 1, "end_id": 1000, "range_index": 0}
    }))
    .unwrap();
    assert_eq!(input.range.map(|r| r.end_id), Some(1000));
    assert!(input.sql.is_none());
    assert_eq!(input.params.new_index, "audio-20260302000405");
}

#[test]
fn start_reindex_task_takes_a_sql_job_instead_of_a_range() {
    use refresh_functions::steps::start_reindex_task::{parse, SqlTaskInput};
    use refresh_functions::worker_client::SqlJob;
    let input = parse(json!({
        "ip": "127.0.0.2", "params": params(), "sql": {"job": "reapply", "parallelism": 8}
    }))
    .unwrap();
    assert_eq!(
        input.sql,
        Some(SqlTaskInput {
            job: SqlJob::Reapply,
            parallelism: Some(8)
        })
    );
    assert!(input.range.is_none());
    let range = json!({"start_id": 1, "end_id": 2, "range_index": 0});
    // (payload, what the refusal must name)
    let cases = [
        (json!({"ip": "127.0.0.2", "params": params()}), "range"),
        (
            json!({"ip": "127.0.0.2", "params": params(), "range": range, "sql": {"job": "reapply"}}),
            "not both",
        ),
        (
            json!({"ip": "127.0.0.2", "params": params(), "sql": {"job": "vacuum"}}),
            "sql.job",
        ),
        (
            json!({"ip": "127.0.0.2", "params": params(), "sql": {"job": "reapply", "x": 1}}),
            "x",
        ),
        (
            json!({"ip": "127.0.0.2", "params": params(), "sql": {"job": "reapply", "parallelism": 0}}),
            "sql.parallelism",
        ),
        (
            json!({"ip": "127.0.0.2", "params": params(), "sql": {"job": "reapply", "parallelism": 17}}),
            "sql.parallelism",
        ),
        (
            json!({"ip": "127.0.0.2", "params": params(), "sql": {"job": "validate_foreign_keys", "parallelism": 2}}),
            "sql.parallelism",
        ),
    ];
    for (payload, names) in cases {
        let err = parse(payload.clone()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{payload}");
        assert!(err.message.contains(names), "{payload}: {}", err.message);
    }
}

#[test]
fn tampered_params_are_invalid_input_naming_the_field() {
    let mut tampered = params();
    tampered["temp_table"] = json!("audio");
    let err = parse_input::<ParamsInput>(json!({ "params": tampered })).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(err.message.contains("temp_table"), "{}", err.message);

    let mut staging_limit = params();
    staging_limit["row_limit"] = json!(5);
    let err = parse_input::<ParamsInput>(json!({ "params": staging_limit })).unwrap_err();
    assert!(err.message.contains("row_limit"), "{}", err.message);
}

#[test]
fn unknown_fields_and_bad_addresses_are_refused() {
    let err = parse_input::<CheckWorkerInput>(json!({"ip": "127.0.0.2", "port": 1})).unwrap_err();
    assert!(err.message.contains("port"), "{}", err.message);
    for ip in ["127.0.0.2:8003", "worker.local", "http://127.0.0.2", ""] {
        let err = parse_input::<CheckWorkerInput>(json!({ "ip": ip })).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{ip}");
        assert!(err.message.contains("ip"), "{ip}: {}", err.message);
    }
    parse_input::<CheckWorkerInput>(json!({"ip": "::1"})).unwrap();
}

#[test]
fn steps_without_params_accept_them_when_given() {
    let input: IndexInput = parse_input(json!({"index": "audio-init"})).unwrap();
    assert!(input.params.is_none());
    let input: IndexInput =
        parse_input(json!({"index": "audio-init", "params": params()})).unwrap();
    assert_eq!(input.params.unwrap().environment.as_str(), "production");
}

#[test]
fn concurrency_scope_comes_from_the_execution_machine() {
    use refresh_core::concurrency::StateMachineKind;
    let arns = json!([
        "arn:aws:states:us-east-1:000000000000:stateMachine:stack-data-refresh",
        "arn:aws:states:us-east-1:000000000000:stateMachine:stack-filtered-index"
    ]);
    let input = |execution: &str| -> CheckConcurrencyInput {
        parse_input(
            json!({"params": params(), "execution_id": execution, "state_machine_arns": arns}),
        )
        .unwrap()
    };
    let filtered = input("arn:aws:states:us-east-1:000000000000:execution:stack-filtered-index:r1");
    assert_eq!(
        filtered.scope().unwrap().kind,
        StateMachineKind::FilteredIndex
    );
    let refresh = input("arn:aws:states:us-east-1:000000000000:execution:stack-data-refresh:r1");
    assert_eq!(refresh.scope().unwrap().kind, StateMachineKind::Refresh);
    let stranger = input("arn:aws:states:us-east-1:000000000000:execution:other-machine:r1");
    assert_eq!(stranger.scope().unwrap_err().kind, ErrorKind::InvalidInput);
    let err = parse_input::<CheckConcurrencyInput>(json!({
        "params": params(), "execution_id": "x", "state_machine_arns": ["only-one"]
    }))
    .unwrap_err();
    assert!(
        err.message.contains("state_machine_arns"),
        "{}",
        err.message
    );
}

#[test]
fn copy_cursor_round_trips_from_the_previous_call() {
    let input: CopyDataInput = parse_input(json!({
        "params": params(),
        "cursor": {"rows_copied": 10, "rows_scanned": 12, "rows_done": false,
                   "lanes": 4, "lanes_done": 1}
    }))
    .unwrap();
    let cursor = input.cursor.unwrap();
    assert_eq!(
        (cursor.rows_scanned, cursor.lanes, cursor.lanes_done),
        (12, 4, 1)
    );
    // A cursor of the single-session copy before lanes is refused by name, not misread.
    let err = parse_input::<CopyDataInput>(json!({
        "params": params(),
        "cursor": {"last_identifier": "7f3c1b1e-2d2a-4c55-9a59-3a0f7a4b9c01", "rows_copied": 10,
                   "rows_scanned": 12, "rows_done": false}
    }))
    .unwrap_err();
    assert!(err.message.contains("last_identifier"), "{}", err.message);
    let input: CopyDataInput = parse_input(json!({"params": params(), "cursor": null})).unwrap();
    assert!(input.cursor.is_none());
}

#[test]
fn report_counts_only_this_runs_new_index() {
    use refresh_functions::steps::report;
    let input =
        report::parse(json!({"params": params(), "new_index": "audio-20260302000405"})).unwrap();
    assert_eq!(input.new_index, "audio-20260302000405");
    for other in [
        "audio",
        "audio-filtered",
        "audio-20260302000405-filtered",
        "image-20260302000405",
    ] {
        let err = report::parse(json!({"params": params(), "new_index": other})).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{other}");
        assert!(
            err.message.contains("new_index"),
            "{other}: {}",
            err.message
        );
    }
    // The counts it used to take are refused: the report counts both sides itself.
    let err = report::parse(
        json!({"params": params(), "new_index": "audio-20260302000405",
        "before": {"total": 1}}),
    )
    .unwrap_err();
    assert!(err.message.contains("before"), "{}", err.message);
}
