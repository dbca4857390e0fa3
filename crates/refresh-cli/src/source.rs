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
/// described as running until the last one is out. Its range executions unfold with it:
/// their events up to the time of the run's last revealed event are out.
pub struct Recorded {
    info: ExecutionInfo,
    events: Vec<HistoryEvent>,
    ranges: Vec<(ExecutionInfo, Vec<HistoryEvent>)>,
    step: usize,
    revealed: Cell<usize>,
}

impl Recorded {
    pub fn new(info: ExecutionInfo, events: Vec<HistoryEvent>, step: usize) -> Recorded {
        Recorded {
            info,
            events,
            ranges: Vec::new(),
            step: step.max(1),
            revealed: Cell::new(0),
        }
    }

    /// The run's range executions, recorded with it.
    pub fn with_ranges(mut self, ranges: Vec<(ExecutionInfo, Vec<HistoryEvent>)>) -> Recorded {
        self.ranges = ranges;
        self
    }

    fn all_out(&self) -> bool {
        self.revealed.get() >= self.events.len()
    }

    /// The description as it would read now: running until the history is all out.
    pub fn info_now(&self) -> ExecutionInfo {
        if self.all_out() {
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
    async fn events_after(&self, arn: &str, after_id: i64) -> Result<Vec<HistoryEvent>, CliError> {
        if let Some((_, events)) = self.ranges.iter().find(|(info, _)| info.arn == arn) {
            let horizon = self
                .revealed
                .get()
                .checked_sub(1)
                .and_then(|i| self.events.get(i))
                .map(|e| e.timestamp);
            let all = self.all_out();
            return Ok(events
                .iter()
                .filter(|e| e.id > after_id && (all || horizon.is_some_and(|h| e.timestamp <= h)))
                .cloned()
                .collect());
        }
        if arn != self.info.arn {
            return Err(CliError::Usage(format!("{arn}: not recorded")));
        }
        let upto = (self.revealed.get() + self.step).min(self.events.len());
        self.revealed.set(upto);
        Ok(self.events[..upto]
            .iter()
            .filter(|e| e.id > after_id)
            .cloned()
            .collect())
    }

    async fn describe(&self, arn: &str) -> Result<ExecutionInfo, CliError> {
        if arn != self.info.arn {
            return Err(CliError::Usage(format!("{arn}: not recorded")));
        }
        Ok(self.info_now())
    }
}
