//! A data refresh and the worker-range executions its ranges run in, read as one run.
//!
//! Each range of the reindex runs in its own execution (the Map's "Index range on a worker"
//! starts it with `startExecution.sync:2`), so the launches, health checks, progress polls
//! and retries are in that execution's history, not the refresh's. The refresh's history
//! names each range's execution (the task's `TaskSubmitted` output, its output, or the
//! failure's description): a [`RunReader`] learns them there, reads each with an
//! interpreter of [`Scope::Range`], and merges everything into one stream in time order.

use crate::history::HistoryEvent;
use crate::interpret::{Interpreter, Scope};
use crate::model::RunEvent;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug)]
struct Child {
    interpreter: Interpreter,
    last_id: i64,
}

/// Reads a run and its range executions, poll by poll (or all at once).
#[derive(Debug)]
pub struct RunReader {
    parent: Interpreter,
    children: BTreeMap<String, Child>,
    /// Ranges whose end (done or failed) has been told: both histories tell it.
    ended: BTreeSet<u32>,
    closed: bool,
}

impl Default for RunReader {
    fn default() -> Self {
        Self::new()
    }
}

impl RunReader {
    pub fn new() -> RunReader {
        RunReader {
            parent: Interpreter::new(),
            children: BTreeMap::new(),
            ended: BTreeSet::new(),
            closed: false,
        }
    }

    /// Interprets events of the run's own history; learns the range executions they name.
    pub fn parent(&mut self, events: &[HistoryEvent]) -> Vec<RunEvent> {
        let mut out = Vec::new();
        for event in events {
            out.extend(self.parent.feed(event));
        }
        for event in &out {
            if let RunEvent::RangeExecution { execution_arn, .. } = event {
                self.children
                    .entry(execution_arn.clone())
                    .or_insert_with(|| Child {
                        interpreter: Interpreter::with_scope(Scope::Range),
                        last_id: 0,
                    });
            }
        }
        out
    }

    /// Interprets events of a range execution's history (those not read before).
    pub fn child(&mut self, arn: &str, events: &[HistoryEvent]) -> Vec<RunEvent> {
        let Some(child) = self.children.get_mut(arn) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let seen = child.last_id;
        for event in events.iter().filter(|e| e.id > seen) {
            child.last_id = child.last_id.max(event.id);
            out.extend(child.interpreter.feed(event));
        }
        out
    }

    /// The range executions still worth reading, with the last event id read of each.
    pub fn children_to_read(&self) -> Vec<(String, i64)> {
        if self.closed {
            return Vec::new();
        }
        self.children
            .iter()
            .filter(|(_, c)| !c.interpreter.is_finished())
            .map(|(arn, c)| (arn.clone(), c.last_id))
            .collect()
    }

    /// Every range execution learnt so far.
    pub fn children(&self) -> Vec<String> {
        self.children.keys().cloned().collect()
    }

    /// One poll's events, the run's own first, then each range execution's: merged in time
    /// order (each history keeping its own order), each range's end told once, nothing
    /// after the run's end (LocalStack lets a range execution run on after its refresh was
    /// stopped).
    pub fn settle(&mut self, streams: Vec<Vec<RunEvent>>) -> Vec<RunEvent> {
        let mut out = Vec::new();
        if self.closed {
            return out;
        }
        for event in merge_by_time(streams) {
            let end_of = match &event {
                RunEvent::RangeDone { range, .. } | RunEvent::RangeFailed { range, .. } => {
                    Some(*range)
                }
                _ => None,
            };
            if end_of.is_some_and(|range| !self.ended.insert(range)) {
                continue;
            }
            let closing = matches!(event, RunEvent::Finished { .. });
            out.push(event);
            if closing {
                self.closed = true;
                break;
            }
        }
        out
    }
}

/// Merges streams that are each in order into one, by time; on equal times the earlier
/// stream goes first.
fn merge_by_time(streams: Vec<Vec<RunEvent>>) -> Vec<RunEvent> {
    let mut streams: Vec<std::iter::Peekable<std::vec::IntoIter<RunEvent>>> = streams
        .into_iter()
        .map(|s| s.into_iter().peekable())
        .collect();
    let mut out = Vec::new();
    loop {
        let next = streams
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.peek().map(|e| (i, e.time())))
            .min_by_key(|(i, time)| (*time, *i))
            .map(|(i, _)| i);
        let Some(index) = next else {
            return out;
        };
        if let Some(event) = streams[index].next() {
            out.push(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, second)
            .single()
            .expect("valid time")
    }

    fn done(second: u32, range: u32) -> RunEvent {
        RunEvent::RangeDone {
            time: at(second),
            range,
            attempt: 1,
            instance_id: None,
            indexed: 10,
        }
    }

    fn waiting(second: u32) -> RunEvent {
        RunEvent::Waiting {
            time: at(second),
            reason: second.to_string(),
        }
    }

    #[test]
    fn streams_merge_by_time_and_keep_their_own_order() {
        let merged = merge_by_time(vec![
            vec![waiting(1), waiting(5), waiting(3)],
            vec![waiting(2), waiting(5)],
        ]);
        let seconds: Vec<u32> = merged
            .iter()
            .map(|e| (e.time() - at(0)).num_seconds() as u32)
            .collect();
        assert_eq!(seconds, [1, 2, 5, 3, 5]);
    }

    #[test]
    fn a_range_ends_once_and_nothing_follows_the_run_end() {
        let mut reader = RunReader::new();
        let finished = RunEvent::Finished {
            time: at(9),
            status: "SUCCEEDED".into(),
            error: None,
            cause: None,
            report: None,
            finish_payload: None,
        };
        let out = reader.settle(vec![
            vec![done(4, 0), finished],
            vec![done(3, 0), done(5, 1), waiting(10)],
        ]);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[0], done(3, 0), "the first telling wins");
        assert_eq!(out[1], done(5, 1));
        assert!(matches!(out[2], RunEvent::Finished { .. }));
        assert!(reader.settle(vec![vec![waiting(11)]]).is_empty());
        assert!(reader.children_to_read().is_empty());
    }
}
