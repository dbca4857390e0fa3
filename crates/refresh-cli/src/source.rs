//! Where a followed execution's history comes from: Step Functions, or a recorded run
//! revealed a few events per poll (the follow loop's tests, and `status --replay FILE` to
//! look at a recorded run as it went).

use crate::aws::Aws;
use crate::error::CliError;
use crate::history::{ExecutionInfo, HistoryEvent};
use std::cell::Cell;

#[allow(async_fn_in_trait)] // used through generics only, never as `dyn`
pub trait Source {
    /// Events with an id above `after_id`, oldest first.
    async fn events_after(&self, arn: &str, after_id: i64) -> Result<Vec<HistoryEvent>, CliError>;
    async fn describe(&self, arn: &str) -> Result<ExecutionInfo, CliError>;
}

impl Source for Aws {
    async fn events_after(&self, arn: &str, after_id: i64) -> Result<Vec<HistoryEvent>, CliError> {
        Aws::events_after(self, arn, after_id).await
    }

    async fn describe(&self, arn: &str) -> Result<ExecutionInfo, CliError> {
        Aws::describe(self, arn).await
    }
}

/// A recorded run that unfolds: each poll reveals `step` more events, and the execution is
/// described as running until the last one is out.
pub struct Recorded {
    info: ExecutionInfo,
    events: Vec<HistoryEvent>,
    step: usize,
    revealed: Cell<usize>,
}

impl Recorded {
    pub fn new(info: ExecutionInfo, events: Vec<HistoryEvent>, step: usize) -> Recorded {
        Recorded {
            info,
            events,
            step: step.max(1),
            revealed: Cell::new(0),
        }
    }

    /// The description as it would read now: running until the history is all out.
    pub fn info_now(&self) -> ExecutionInfo {
        if self.revealed.get() >= self.events.len() {
            self.info.clone()
        } else {
            ExecutionInfo {
                status: "RUNNING".into(),
                stop: None,
                output: None,
                error: None,
                cause: None,
                ..self.info.clone()
            }
        }
    }
}

impl Source for Recorded {
    async fn events_after(&self, _: &str, after_id: i64) -> Result<Vec<HistoryEvent>, CliError> {
        let upto = (self.revealed.get() + self.step).min(self.events.len());
        self.revealed.set(upto);
        Ok(self.events[..upto]
            .iter()
            .filter(|e| e.id > after_id)
            .cloned()
            .collect())
    }

    async fn describe(&self, _: &str) -> Result<ExecutionInfo, CliError> {
        Ok(self.info_now())
    }
}
