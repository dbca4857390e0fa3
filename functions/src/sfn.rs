//! Step Functions adapter for the concurrency check: the RUNNING executions of the watched
//! state machines, with their input (ListExecutions, every page, then DescribeExecution).

use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sfn::types::ExecutionStatus;
use refresh_core::concurrency::{
    start_date_from_epoch, ExecutionLister, RunningExecution, WatchedStateMachine,
};
use refresh_core::error::{ErrorKind, StepError, StepResult};
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
