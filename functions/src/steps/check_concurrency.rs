//! Step 0b: refuses the run while a conflicting execution holds its environment.
//! Input: `{params, execution_id, state_machine_arns: [data refresh, filtered index]}`.

use super::params::checked_params;
use crate::runtime::parse_input;
use crate::sfn::SfnExecutionLister;
use crate::Context;
use refresh_core::concurrency::{
    check_concurrency, ExecutionScope, StateMachineKind, WatchedStateMachine,
};
use refresh_core::error::{StepError, StepResult};
use refresh_core::input::RefreshParams;
use refresh_core::machines::state_machine_of_execution;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConcurrencyInput {
    #[serde(deserialize_with = "checked_params")]
    pub params: RefreshParams,
    pub execution_id: String,
    /// In the definitions' order: the data refresh machine, then the filtered-index machine.
    pub state_machine_arns: [String; 2],
}

impl CheckConcurrencyInput {
    pub fn watched(&self) -> Vec<WatchedStateMachine> {
        let [refresh, filtered] = self.state_machine_arns.clone();
        vec![
            WatchedStateMachine {
                kind: StateMachineKind::Refresh,
                arn: refresh,
            },
            WatchedStateMachine {
                kind: StateMachineKind::FilteredIndex,
                arn: filtered,
            },
        ]
    }

    /// What this execution is: the kind of the watched machine it belongs to.
    pub fn scope(&self) -> StepResult<ExecutionScope> {
        let own_machine = state_machine_of_execution(&self.execution_id).ok_or_else(|| {
            StepError::invalid_input(format!(
                "execution_id: {:?} is not a Step Functions execution ARN",
                self.execution_id
            ))
        })?;
        let kind = self
            .watched()
            .into_iter()
            .find(|m| m.arn == own_machine)
            .map(|m| m.kind)
            .ok_or_else(|| {
                StepError::invalid_input(format!(
                    "execution_id: state machine {own_machine} is not in state_machine_arns"
                ))
            })?;
        Ok(ExecutionScope {
            kind,
            media_type: self.params.media_type,
            environment: self.params.environment,
        })
    }
}

/// The parsed input and the scope it names.
pub fn parse(payload: Value) -> StepResult<(CheckConcurrencyInput, ExecutionScope)> {
    let input: CheckConcurrencyInput = parse_input(payload)?;
    let scope = input.scope()?;
    Ok((input, scope))
}

pub async fn handle(
    ctx: Arc<Context>,
    (input, scope): (CheckConcurrencyInput, ExecutionScope),
) -> StepResult<Value> {
    let lister = SfnExecutionLister::from_config(&ctx.aws);
    check_concurrency(
        &lister,
        &input.execution_id,
        &scope,
        input.params.allow_concurrent,
        &input.watched(),
    )
    .await?;
    Ok(json!({}))
}
