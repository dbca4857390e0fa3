//! cleanup: removes what a failed, aborted or timed-out run left behind.
//!
//! Invoked two ways:
//! - from the data refresh machine's Catch: `{params, execution_id}`;
//! - by EventBridge for a `Step Functions Execution Status Change` event (ABORTED, TIMED_OUT,
//!   FAILED) of any of the stack's machines: the execution never reached its own cleanup (or
//!   did, and this run repeats it harmlessly).
//!
//! For a data refresh run it first stops the run's worker-range executions still running
//! (else one would launch a new worker once its own was terminated), then terminates every
//! worker tagged with the run. A worker-range execution's own event only terminates the
//! workers that execution launched: the temp table and indices belong to its data refresh
//! run, which may still be going (its Map's Catch decides what the failed range means).
//!
//! It never deletes an index an alias points at and never touches the live table. A run that
//! was refused (bad input, or another run held the environment) created nothing: its event is
//! ignored, since the temp table then belongs to the run that holds the environment. For the
//! same reason an event's database and index cleanup is skipped while a conflicting execution
//! is running.

use super::params::checked_params;
use crate::context::api_db;
use crate::runtime::parse_input;
use crate::sfn::SfnExecutionLister;
use crate::Context;
use chrono::{DateTime, Utc};
use refresh_core::cleanup::CleanupPlan;
use refresh_core::concurrency::{find_conflict, ExecutionLister, ExecutionScope, StateMachineKind};
use refresh_core::error::{ErrorKind, StepError, StepResult};
use refresh_core::es::{delete_unaliased, SearchClient};
use refresh_core::input::RefreshParams;
use refresh_core::machines::{
    got_past_admission, sibling_machine, state_machine_of_execution,
    watched_machines, Machine,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// The status change event's `detail-type`.
pub const STATUS_CHANGE: &str = "Step Functions Execution Status Change";
/// Statuses after which an execution may have left something behind.
pub const CLEANUP_STATUSES: [&str; 3] = ["ABORTED", "TIMED_OUT", "FAILED"];

/// The Catch invocation: `{params, execution_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatchCleanup {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    pub execution_id: String,
}

/// The EventBridge event; only the fields cleanup reads.
#[derive(Debug, Deserialize)]
pub struct StatusChangeEvent {
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    pub detail: StatusChangeDetail,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChangeDetail {
    pub execution_arn: String,
    pub state_machine_arn: String,
    pub status: String,
    /// Milliseconds since the Unix epoch (AWS); LocalStack sends an RFC 3339 string.
    pub start_date: EventTime,
    /// The execution input as a JSON string (absent when too large to include; LocalStack
    /// sends `{}` for an empty input).
    #[serde(default)]
    pub input: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EventTime {
    EpochMillis(i64),
    Text(String),
}

impl EventTime {
    pub fn to_utc(&self) -> Option<DateTime<Utc>> {
        match self {
            EventTime::EpochMillis(ms) => DateTime::from_timestamp_millis(*ms),
            EventTime::Text(text) => DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

#[derive(Debug)]
pub enum CleanupRequest {
    Catch(CatchCleanup),
    Event(StatusChangeEvent),
}

/// An event is recognised by its `detail-type`; anything else must be the Catch shape.
pub fn parse(payload: Value) -> StepResult<CleanupRequest> {
    if payload.get("detail-type").is_some() {
        let event: StatusChangeEvent = parse_input(payload)?;
        if event.detail_type != STATUS_CHANGE || event.source != "aws.states" {
            return Err(StepError::invalid_input(format!(
                "cleanup handles {STATUS_CHANGE:?} events from aws.states, not {:?} from {:?}",
                event.detail_type, event.source
            )));
        }
        Ok(CleanupRequest::Event(event))
    } else {
        Ok(CleanupRequest::Catch(parse_input(payload)?))
    }
}

/// The plan for a status change event (see [`CleanupPlan::from_execution_input`]).
pub fn plan_for_event(detail: &StatusChangeDetail) -> StepResult<Option<CleanupPlan>> {
    CleanupPlan::from_execution_input(
        &detail.execution_arn,
        &detail.state_machine_arn,
        detail.input.as_ref(),
        || {
            detail.start_date.to_utc().ok_or_else(|| {
                StepError::invalid_input(format!(
                    "detail.startDate: {:?} is not a time",
                    detail.start_date
                ))
            })
        },
    )
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CleanupOutput {
    /// Worker-range executions of the run that were still running, stopped first.
    pub stopped_range_executions: Vec<String>,
    pub terminated_instances: Vec<String>,
    pub dropped_temp_table: bool,
    pub dropped_fdw_server: bool,
    pub deleted_indices: Vec<String>,
    /// Elasticsearch reindex tasks still writing into the deleted indices, cancelled first.
    pub cancelled_tasks: Vec<String>,
    /// Candidates left alone because an alias points at them.
    pub kept_indices: Vec<String>,
    /// Why nothing (or only the workers) was cleaned, when so.
    pub skipped: Option<String>,
    /// The state whose failure sent the run here (the Catch invocation; read from the
    /// execution's history): the failure notice names it.
    pub failed_state: Option<String>,
}

/// Runs the cleanup for either invocation. Idempotent: a second run finds nothing to do.
pub async fn handle(ctx: Arc<Context>, request: CleanupRequest) -> StepResult<CleanupOutput> {
    match request {
        CleanupRequest::Catch(request) => {
            let plan = CleanupPlan::from_params(&request.params, &request.execution_id);
            let failed_state =
                crate::sfn::failed_state_of(&aws_sdk_sfn::Client::new(&ctx.aws), &request.execution_id).await;
            let mut output = execute(&ctx, &plan, true).await?;
            output.failed_state = failed_state;
            Ok(output)
        }
        CleanupRequest::Event(event) => cleanup_after_event(&ctx, &event.detail).await,
    }
}

async fn cleanup_after_event(
    ctx: &Context,
    detail: &StatusChangeDetail,
) -> StepResult<CleanupOutput> {
    let skip = |why: String| {
        tracing::info!(execution = %detail.execution_arn, reason = %why, "nothing to clean up");
        Ok(CleanupOutput {
            skipped: Some(why),
            ..CleanupOutput::default()
        })
    };
    if !CLEANUP_STATUSES.contains(&detail.status.as_str()) {
        return skip(format!(
            "execution status {} needs no cleanup",
            detail.status
        ));
    }
    if Machine::of_arn(&detail.state_machine_arn)? == Machine::WorkerRange {
        return cleanup_after_range_event(ctx, detail).await;
    }
    let Some(plan) = plan_for_event(detail)? else {
        return skip("the execution input names no valid media, environment and suffix".into());
    };
    let sfn = aws_sdk_sfn::Client::new(&ctx.aws);
    if !execution_got_past_admission(&sfn, &detail.execution_arn).await? {
        return skip("the run was refused before it created anything".into());
    }
    // Our own workers go first: nothing else can be using them.
    let terminated = execute_workers_only(ctx, &plan).await?;
    // A run holding the environment now may use the same temp table (and, with a fixed
    // suffix, the same index names): leave them to it.
    let scope = ExecutionScope {
        kind: plan.kind,
        media_type: plan.media,
        environment: plan.environment,
    };
    let running = SfnExecutionLister::new(sfn)
        .list_running(&watched_machines(&detail.state_machine_arn)?)
        .await?;
    if let Some(other) = find_conflict(&detail.execution_arn, &scope, false, &running) {
        return Ok(CleanupOutput {
            skipped: Some(format!(
                "execution {} is running in {} for {}: the temp table and indices were left to it",
                other.arn, plan.environment, plan.media
            )),
            ..terminated
        });
    }
    let mut output = execute(ctx, &plan, plan.kind == StateMachineKind::Refresh).await?;
    output.terminated_instances = terminated.terminated_instances;
    output.stopped_range_executions = terminated.stopped_range_executions;
    Ok(output)
}

/// A worker-range execution that failed, was stopped or timed out: only the workers it
/// launched are terminated (a stopped or timed-out one never reached its terminate state).
/// Its data refresh run owns the temp table and indices and cleans them up itself.
async fn cleanup_after_range_event(
    ctx: &Context,
    detail: &StatusChangeDetail,
) -> StepResult<CleanupOutput> {
    let terminated =
        crate::ec2::terminate_range_execution_instances(&ctx.ec2(), &detail.execution_arn).await?;
    Ok(CleanupOutput {
        terminated_instances: terminated,
        skipped: Some(
            "a worker-range execution: only its own workers were terminated; its data refresh run owns the temp table and indices".into(),
        ),
        ..CleanupOutput::default()
    })
}

async fn execution_got_past_admission(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> StepResult<bool> {
    let mut pages = sfn
        .get_execution_history()
        .execution_arn(execution_arn)
        .include_execution_data(false)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            StepError::new(
                ErrorKind::Internal,
                format!(
                    "Step Functions GetExecutionHistory failed: {}",
                    aws_sdk_sfn::error::DisplayErrorContext(&e)
                ),
            )
        })?;
        let entered = page
            .events()
            .iter()
            .filter_map(|e| e.state_entered_event_details())
            .map(|d| d.name());
        if got_past_admission(entered) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A data refresh run's worker-range executions, then its workers. The workers are
/// terminated even when stopping the executions failed (that error is returned afterwards,
/// so the caller retries).
async fn execute_workers_only(ctx: &Context, plan: &CleanupPlan) -> StepResult<CleanupOutput> {
    let mut output = CleanupOutput::default();
    if plan.kind != StateMachineKind::Refresh {
        return Ok(output);
    }
    let stopped = stop_range_executions(ctx, &plan.execution_arn).await;
    output.terminated_instances =
        crate::ec2::terminate_execution_instances(&ctx.ec2(), &plan.execution_arn).await?;
    output.stopped_range_executions = stopped?;
    Ok(output)
}

async fn stop_range_executions(ctx: &Context, execution_arn: &str) -> StepResult<Vec<String>> {
    let machine = state_machine_of_execution(execution_arn).ok_or_else(|| {
        StepError::invalid_input(format!(
            "execution_id: {execution_arn:?} is not a Step Functions execution ARN"
        ))
    })?;
    let worker_range = sibling_machine(&machine, Machine::WorkerRange)?;
    crate::sfn::stop_range_executions(
        &aws_sdk_sfn::Client::new(&ctx.aws),
        &worker_range,
        execution_arn,
    )
    .await
}

/// How long cleanup waits for terminated workers to be gone before deleting their index.
pub const WORKER_SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(180);

/// Workers, then the database, then the indices; every part is tried, the first error is
/// returned after all of them ran (a retry repeats only what is left).
async fn execute(ctx: &Context, plan: &CleanupPlan, database: bool) -> StepResult<CleanupOutput> {
    let mut first_error: Option<StepError> = None;
    let mut keep = |result: StepResult<()>| {
        if let Err(e) = result {
            tracing::error!(error_type = e.kind.name(), error = %e.message, "cleanup part failed");
            first_error.get_or_insert(e);
        }
    };
    let mut output = execute_workers_only(ctx, plan).await.unwrap_or_else(|e| {
        keep(Err(e));
        CleanupOutput::default()
    });
    let secrets = ctx.secrets(Some(plan.environment)).await?;
    if database {
        keep(
            async {
                let api = api_db(&secrets).await?;
                refresh_core::pg::fdw::drop_fdw(&api, plan.media).await?;
                output.dropped_fdw_server = true;
                output.dropped_temp_table =
                    refresh_core::pg::counts::drop_temp_table(&api, plan.media).await?;
                Ok(())
            }
            .await,
        );
    }
    // Past the point of no return the promoted table's rows are in the new indices: they
    // are what the roll-forward (or the operator's finish) moves the aliases onto.
    let promoted = match plan.kind {
        StateMachineKind::Refresh => match promoted_by_this_run(&secrets, plan).await {
            Ok(promoted) => promoted,
            Err(e) => {
                keep(Err(e));
                // Unknown: keeping an index is recoverable, deleting a promoted one is not.
                true
            }
        },
        StateMachineKind::FilteredIndex => false,
    };
    if promoted {
        output.kept_indices = plan.indices.clone();
        output.skipped = Some(format!(
            "the run promoted the {} table (the point of no return): its new indices {} are kept for the aliases to be moved onto",
            plan.media,
            plan.indices.join(", ")
        ));
    }
    keep(
        async {
            if promoted {
                return Ok(());
            }
            let search = SearchClient::from_secrets(&secrets)?;
            // A worker still shutting down may send one more bulk request, which would
            // re-create a deleted index with dynamic mappings.
            let remaining = crate::ec2::wait_until_gone(
                &ctx.ec2(),
                &plan.execution_arn,
                crate::runtime::time_budget(WORKER_SHUTDOWN_WAIT),
            )
            .await?;
            if !remaining.is_empty() {
                tracing::warn!(instances = ?remaining, "workers still shutting down; deleting the indices anyway");
            }
            let removed = delete_unaliased(&search, plan.media, &plan.indices).await?;
            output.deleted_indices = removed.deleted;
            output.kept_indices = removed.kept;
            output.cancelled_tasks = removed.cancelled_tasks;
            Ok(())
        }
        .await,
    );
    match first_error {
        Some(e) => Err(e),
        None => {
            tracing::info!(execution = %plan.execution_arn, output = ?output, "cleanup done");
            Ok(output)
        }
    }
}

async fn promoted_by_this_run(
    secrets: &refresh_core::settings::Secrets,
    plan: &CleanupPlan,
) -> StepResult<bool> {
    let Some(new_index) = plan.indices.first() else {
        return Ok(false);
    };
    let api = api_db(secrets).await?;
    refresh_core::pg::promote::table_promoted_by(&api, new_index).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use refresh_core::environment::Environment;
    use serde_json::json;

    fn event(machine: &str, status: &str, input: Option<&str>) -> Value {
        json!({
            "version": "0", "id": "e-1", "detail-type": STATUS_CHANGE, "source": "aws.states",
            "account": "000000000000", "time": "2026-03-02T00:10:00Z", "region": "us-east-1",
            "resources": [format!("arn:aws:states:us-east-1:000000000000:execution:{machine}:run-1")],
            "detail": {
                "executionArn": format!("arn:aws:states:us-east-1:000000000000:execution:{machine}:run-1"),
                "stateMachineArn": format!("arn:aws:states:us-east-1:000000000000:stateMachine:{machine}"),
                "name": "run-1", "status": status,
                "startDate": 1_772_409_845_123_i64, "stopDate": 1_772_410_000_000_i64,
                "input": input, "inputDetails": {"included": true}, "output": null
            }
        })
    }

    fn plan_of(value: Value) -> Option<CleanupPlan> {
        match parse(value).unwrap() {
            CleanupRequest::Event(e) => plan_for_event(&e.detail).unwrap(),
            CleanupRequest::Catch(_) => panic!("parsed as a Catch request"),
        }
    }

    #[test]
    fn refresh_event_without_suffix_uses_the_start_date() {
        let plan = plan_of(event(
            "stack-data-refresh",
            "ABORTED",
            Some(r#"{"media_type": "image", "environment": "staging"}"#),
        ))
        .unwrap();
        // 1772409845123 ms = 2026-03-02T00:04:05.123Z, the same rule validate_input applies.
        assert_eq!(
            plan.indices,
            ["image-20260302000405", "image-20260302000405-filtered"]
        );
        assert_eq!(plan.kind, StateMachineKind::Refresh);
        assert_eq!(plan.environment, Environment::Staging);
        assert!(plan
            .execution_arn
            .ends_with("execution:stack-data-refresh:run-1"));
    }

    #[test]
    fn localstack_event_with_iso_start_date_and_object_input_plans_the_same() {
        let mut localstack = event(
            "stack-data-refresh",
            "ABORTED",
            Some(r#"{"media_type": "image", "environment": "staging"}"#),
        );
        localstack["detail"]["startDate"] = json!("2026-03-02T00:04:05.123000+00:00");
        let plan = plan_of(localstack.clone()).unwrap();
        assert_eq!(
            plan.indices,
            ["image-20260302000405", "image-20260302000405-filtered"]
        );
        localstack["detail"]["input"] = json!({});
        assert_eq!(plan_of(localstack.clone()), None);
        localstack["detail"]["startDate"] = json!("yesterday");
        localstack["detail"]["input"] = json!({"media_type": "audio", "environment": "staging"});
        let CleanupRequest::Event(e) = parse(localstack).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(
            plan_for_event(&e.detail).unwrap_err().kind,
            ErrorKind::InvalidInput
        );
    }

    #[test]
    fn filtered_machine_event_only_names_the_filtered_index() {
        let plan = plan_of(event(
            "stack-filtered-index",
            "FAILED",
            Some(r#"{"media_type": "audio", "environment": "production", "index_suffix": "init"}"#),
        ))
        .unwrap();
        assert_eq!(plan.indices, ["audio-init-filtered"]);
        assert_eq!(plan.kind, StateMachineKind::FilteredIndex);
    }

    #[test]
    fn input_that_cannot_have_passed_validation_plans_nothing() {
        for input in [
            None,
            Some("not json"),
            Some(r#"{"media_type": "video", "environment": "staging"}"#),
            Some(r#"{"media_type": "image", "environment": "staging", "index_suffix": "Bad*"}"#),
        ] {
            assert_eq!(
                plan_of(event("stack-data-refresh", "FAILED", input)),
                None,
                "{input:?}"
            );
        }
    }

    #[test]
    fn catch_request_uses_the_validated_names() {
        let params = json!({
            "media_type": "image", "environment": "staging", "index_suffix": "init",
            "new_index": "image-init", "new_filtered_index": "image-init-filtered",
            "temp_table": "temp_import_image", "skip_copy": false, "allow_concurrent": false, "wait_if_busy": false,
            "max_record_drop_pct": 10.0, "override_record_drop": false, "row_limit": 100000,
            "worker_count": 2, "launch_template": "lt"
        });
        let request =
            parse(json!({"params": params, "execution_id": "arn:x:execution:m:r"}))
                .unwrap();
        let CleanupRequest::Catch(request) = request else {
            panic!("not a Catch request")
        };
        let plan = CleanupPlan::from_params(&request.params, &request.execution_id);
        assert_eq!(plan.indices, ["image-init", "image-init-filtered"]);
        assert_eq!(plan.execution_arn, "arn:x:execution:m:r");
    }

    #[test]
    fn worker_range_events_are_never_planned_as_a_refresh() {
        // The plan (temp table, indices) is only ever made for the two machines that hold an
        // environment; a range's event is handled apart, by its own workers only.
        let CleanupRequest::Event(e) = parse(event(
            "stack-worker-range",
            "ABORTED",
            Some(r#"{"root_execution_id": "arn:aws:states:us-east-1:000000000000:execution:stack-data-refresh:run-1", "range": {"start_id": 1, "end_id": 2, "range_index": 0}, "params": {"media_type": "image", "environment": "staging"}}"#),
        ))
        .unwrap() else {
            panic!("not an event")
        };
        assert_eq!(
            Machine::of_arn(&e.detail.state_machine_arn).unwrap(),
            Machine::WorkerRange
        );
        assert_eq!(plan_for_event(&e.detail).unwrap_err().kind, ErrorKind::InvalidInput);
    }

    #[test]
    fn other_events_and_machines_are_refused() {
        let mut other = event("stack-data-refresh", "FAILED", None);
        other["detail-type"] = json!("EC2 Instance State-change Notification");
        assert!(parse(other).is_err());
        assert!(parse(json!({"execution_id": "x"})).is_err());
    }

}
