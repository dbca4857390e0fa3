//! check_concurrency: `{params, execution_id, state_machine_arns: [data refresh, filtered index]}`.

use refresh_core::concurrency::{ExecutionScope, StateMachineKind, WatchedStateMachine};
use refresh_core::error::{StepError, StepResult};
use refresh_core::input::RefreshParams;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConcurrencyInput {
    #[serde(deserialize_with = "super::checked_params")]
    pub params: RefreshParams,
    pub execution_id: String,
    /// In the definitions' order: the data refresh machine, then the filtered-index machine.
    pub state_machine_arns: [String; 2],
}

/// `arn:…:execution:<machine>:<name>` → `arn:…:stateMachine:<machine>`.
pub fn state_machine_of_execution(execution_arn: &str) -> Option<String> {
    let (head, tail) = execution_arn.split_once(":execution:")?;
    let (machine, name) = tail.split_once(':')?;
    (!machine.is_empty() && !name.is_empty()).then(|| format!("{head}:stateMachine:{machine}"))
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

#[cfg(test)]
mod tests {
    use super::*;

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
