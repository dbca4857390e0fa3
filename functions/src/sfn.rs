//! Step Functions adapter: the RUNNING executions of the watched state machines, with their
//! input (ListExecutions, every page, then DescribeExecution), for the concurrency check; and
//! stopping the worker-range executions a data refresh run left running, for cleanup.

use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sfn::types::ExecutionStatus;
use refresh_core::concurrency::{
    start_date_from_epoch, ExecutionLister, RunningExecution, WatchedStateMachine,
};
use refresh_core::error::{ErrorKind, StepError, StepResult};
use refresh_core::machines::root_execution_of;
use serde_json::Value;

/// Lists running executions through the Step Functions API.
#[derive(Debug, Clone)]
pub struct SfnExecutionLister {
    client: aws_sdk_sfn::Client,
}

impl SfnExecutionLister {
    pub fn new(client: aws_sdk_sfn::Client) -> Self {
        SfnExecutionLister { client }
    }

    pub fn from_config(aws: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_sfn::Client::new(aws))
    }

    /// The input of a running execution; `None` when it finished (or vanished) meanwhile.
    /// Input that is not JSON becomes `null`, which the check treats as conflicting.
    async fn running_input(&self, execution_arn: &str) -> StepResult<Option<Value>> {
        match self
            .client
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
        {
            Ok(described) if described.status() != &ExecutionStatus::Running => Ok(None),
            Ok(described) => Ok(Some(
                described
                    .input()
                    .and_then(|raw| serde_json::from_str(raw).ok())
                    .unwrap_or(Value::Null),
            )),
            Err(SdkError::ServiceError(service))
                if service.err().code() == Some("ExecutionDoesNotExist") =>
            {
                Ok(None)
            }
            Err(e) => Err(sfn_error("DescribeExecution", &e)),
        }
    }
}

impl ExecutionLister for SfnExecutionLister {
    async fn list_running(
        &self,
        state_machines: &[WatchedStateMachine],
    ) -> StepResult<Vec<RunningExecution>> {
        let mut running = Vec::new();
        for machine in state_machines {
            let mut pages = self
                .client
                .list_executions()
                .state_machine_arn(&machine.arn)
                .status_filter(ExecutionStatus::Running)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| sfn_error("ListExecutions", &e))?;
                for item in page.executions() {
                    let Some(input) = self.running_input(item.execution_arn()).await? else {
                        continue;
                    };
                    let started = item.start_date();
                    running.push(RunningExecution {
                        arn: item.execution_arn().to_string(),
                        name: item.name().to_string(),
                        state_machine_kind: machine.kind,
                        input,
                        start_date: start_date_from_epoch(started.secs(), started.subsec_nanos())?,
                    });
                }
            }
        }
        Ok(running)
    }
}

/// Stops every RUNNING execution of the worker-range machine `worker_range_arn` that works
/// for the data refresh execution `root_execution_arn`; returns the ARNs it stopped.
///
/// Cleanup does this before it terminates the run's workers: a range execution still running
/// (Step Functions stops a `.sync` child only on a best-effort basis, LocalStack not at all)
/// would otherwise see its worker vanish and launch a new one for its next attempt.
pub async fn stop_range_executions(
    client: &aws_sdk_sfn::Client,
    worker_range_arn: &str,
    root_execution_arn: &str,
) -> StepResult<Vec<String>> {
    let mut stopped = Vec::new();
    let mut pages = client
        .list_executions()
        .state_machine_arn(worker_range_arn)
        .status_filter(ExecutionStatus::Running)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| sfn_error("ListExecutions", &e))?;
        for item in page.executions() {
            let described = match client
                .describe_execution()
                .execution_arn(item.execution_arn())
                .send()
                .await
            {
                Ok(described) => described,
                Err(SdkError::ServiceError(service))
                    if service.err().code() == Some("ExecutionDoesNotExist") =>
                {
                    continue;
                }
                Err(e) => return Err(sfn_error("DescribeExecution", &e)),
            };
            let input = Value::String(described.input().unwrap_or_default().to_string());
            if root_execution_of(&input).as_deref() != Some(root_execution_arn) {
                continue;
            }
            match client
                .stop_execution()
                .execution_arn(item.execution_arn())
                .error("DataRefreshCleanup")
                .cause(format!(
                    "the data refresh execution {root_execution_arn} ended; its cleanup stops its ranges"
                ))
                .send()
                .await
            {
                Ok(_) => stopped.push(item.execution_arn().to_string()),
                Err(e) => {
                    // Ended meanwhile: nothing left to stop.
                    let still_running = client
                        .describe_execution()
                        .execution_arn(item.execution_arn())
                        .send()
                        .await
                        .map(|d| d.status() == &ExecutionStatus::Running)
                        .unwrap_or(true);
                    if still_running {
                        return Err(sfn_error("StopExecution", &e));
                    }
                }
            }
        }
    }
    if !stopped.is_empty() {
        tracing::info!(execution = root_execution_arn, stopped = ?stopped, "stopped worker-range executions");
    }
    Ok(stopped)
}

/// The state whose failure sent a run (either machine) down its failure path, from the newest
/// 500 events of its history (`machines::failed_state`). Only a notice reads it:
/// a history that cannot be read is logged, never a reason to leave the cleanup undone.
pub async fn failed_state_of(client: &aws_sdk_sfn::Client, execution_arn: &str) -> Option<String> {
    let page = client
        .get_execution_history()
        .execution_arn(execution_arn)
        .include_execution_data(false)
        .reverse_order(true)
        .max_results(500)
        .send()
        .await;
    match page {
        Ok(page) => refresh_core::machines::failed_state(
            page.events()
                .iter()
                .filter_map(|e| e.state_entered_event_details())
                .map(|d| d.name()),
        ),
        Err(error) => {
            tracing::warn!(execution = %execution_arn, error = %aws_sdk_sfn::error::DisplayErrorContext(&error), "could not read the history for the failed state");
            None
        }
    }
}

/// A state machine ARN that does not exist or may not be listed is a deployment problem;
/// anything else (throttling, network) is reported with the SDK's reason.
fn sfn_error<E, R>(operation: &str, error: &SdkError<E, R>) -> StepError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let kind = match error {
        SdkError::ServiceError(service) => match service.err().code() {
            Some("StateMachineDoesNotExist" | "InvalidArn" | "AccessDeniedException") => {
                ErrorKind::Configuration
            }
            _ => ErrorKind::Internal,
        },
        _ => ErrorKind::Internal,
    };
    StepError::new(
        kind,
        format!(
            "Step Functions {operation} failed: {}",
            aws_sdk_sfn::error::DisplayErrorContext(error)
        ),
    )
}
