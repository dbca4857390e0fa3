//! Refuse to start while a conflicting execution is running.
//!
//! Conflicts (same environment only):
//! - a refresh conflicts with any other running refresh (any media: they share the workers'
//!   launch template, the database and the cluster), and with a filtered-index rebuild of
//!   its media (both move `<media>-filtered`);
//! - a filtered-index rebuild conflicts with a refresh or filtered-index rebuild of its media.
//!
//! Two executions that start together would each see the other as RUNNING; to keep one of
//! them going, an execution only yields to those that started *before* it (ties broken by
//! ARN). The later one refuses, naming the earlier.

use crate::environment::Environment;
use crate::error::{ErrorKind, StepError};
use crate::media::MediaType;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::future::Future;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateMachineKind {
    Refresh,
    FilteredIndex,
}

/// A state machine whose running executions may block this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchedStateMachine {
    pub kind: StateMachineKind,
    pub arn: String,
}

/// A RUNNING execution as the lister reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningExecution {
    pub arn: String,
    pub name: String,
    pub state_machine_kind: StateMachineKind,
    /// The execution's input; only `media_type` and `environment` are read.
    pub input: Value,
    pub start_date: DateTime<Utc>,
}

/// What the checking execution is and does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionScope {
    pub kind: StateMachineKind,
    pub media_type: MediaType,
    pub environment: Environment,
}

/// Port to Step Functions: list RUNNING executions of the given state machines, with their
/// input. The AWS adapter lives in the functions crate.
pub trait ExecutionLister {
    fn list_running(
        &self,
        state_machines: &[WatchedStateMachine],
    ) -> impl Future<Output = Result<Vec<RunningExecution>, StepError>> + Send;
}

impl ExecutionScope {
    /// The scope of a data refresh with these validated parameters.
    pub fn refresh(params: &crate::input::RefreshParams) -> Self {
        ExecutionScope {
            kind: StateMachineKind::Refresh,
            media_type: params.media_type,
            environment: params.environment,
        }
    }
}

/// A start date from seconds and nanoseconds since the Unix epoch (how the AWS SDK gives it).
pub fn start_date_from_epoch(seconds: i64, nanos: u32) -> Result<DateTime<Utc>, StepError> {
    DateTime::from_timestamp(seconds, nanos).ok_or_else(|| {
        StepError::new(
            ErrorKind::Internal,
            format!("execution start date {seconds}s is out of range"),
        )
    })
}

/// Scope read from another execution's input; `None` where the input does not say (an
/// execution whose scope cannot be read is assumed to conflict).
struct ObservedScope {
    media_type: Option<MediaType>,
    environment: Option<Environment>,
}

fn observed_scope(input: &Value) -> ObservedScope {
    // Accept both a raw execution input and one already wrapped with validated params.
    let field = |name: &str| {
        input
            .get(name)
            .or_else(|| input.get("params").and_then(|p| p.get(name)))
            .and_then(Value::as_str)
    };
    ObservedScope {
        media_type: field("media_type").and_then(|m| m.parse().ok()),
        environment: field("environment").and_then(|e| e.parse().ok()),
    }
}

fn conflicts(current: &ExecutionScope, other: &RunningExecution) -> bool {
    let scope = observed_scope(&other.input);
    let same_environment = scope.environment.is_none_or(|e| e == current.environment);
    let same_media = scope.media_type.is_none_or(|m| m == current.media_type);
    match (current.kind, other.state_machine_kind) {
        (StateMachineKind::Refresh, StateMachineKind::Refresh) => same_environment,
        _ => same_environment && same_media,
    }
}

/// The running execution that blocks `current_execution_arn`, if any (the earliest started
/// when several do). `allow_concurrent` disables the check.
pub fn find_conflict<'a>(
    current_execution_arn: &str,
    scope: &ExecutionScope,
    allow_concurrent: bool,
    running: &'a [RunningExecution],
) -> Option<&'a RunningExecution> {
    if allow_concurrent {
        return None;
    }
    // Our own start as Step Functions recorded it; if we are not in the list, everything
    // running started before us.
    let own_start = running
        .iter()
        .find(|r| r.arn == current_execution_arn)
        .map(|r| (r.start_date, r.arn.as_str()));
    running
        .iter()
        .filter(|r| r.arn != current_execution_arn)
        .filter(|r| match own_start {
            Some(own) => (r.start_date, r.arn.as_str()) < own,
            None => true,
        })
        .filter(|r| conflicts(scope, r))
        .min_by(|a, b| (a.start_date, &a.arn).cmp(&(b.start_date, &b.arn)))
}

/// `Ok` when nothing blocks; otherwise `ConcurrencyConflict` naming the blocking execution.
pub fn check_conflicts(
    current_execution_arn: &str,
    scope: &ExecutionScope,
    allow_concurrent: bool,
    running: &[RunningExecution],
) -> Result<(), StepError> {
    match find_conflict(current_execution_arn, scope, allow_concurrent, running) {
        None => Ok(()),
        Some(blocking) => {
            let what = match blocking.state_machine_kind {
                StateMachineKind::Refresh => "data refresh",
                StateMachineKind::FilteredIndex => "filtered-index rebuild",
            };
            Err(StepError::new(
                ErrorKind::ConcurrencyConflict,
                format!(
                    "another {what} is running: execution {} ({}), started at {}; refusing to start a {} {} \
                     run (set allow_concurrent to override)",
                    blocking.name,
                    blocking.arn,
                    blocking.start_date.to_rfc3339(),
                    scope.environment,
                    scope.media_type,
                ),
            ))
        }
    }
}

/// Lists running executions of `state_machines` and checks them against this execution.
pub async fn check_concurrency(
    lister: &impl ExecutionLister,
    current_execution_arn: &str,
    scope: &ExecutionScope,
    allow_concurrent: bool,
    state_machines: &[WatchedStateMachine],
) -> Result<(), StepError> {
    if allow_concurrent {
        tracing::warn!(
            current_execution_arn,
            "allow_concurrent set: skipping the concurrency check"
        );
        return Ok(());
    }
    let running = lister.list_running(state_machines).await?;
    tracing::info!(
        running = running.len(),
        "running executions of the watched state machines"
    );
    check_conflicts(current_execution_arn, scope, allow_concurrent, &running)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 0, minute, 0).unwrap()
    }

    fn running(
        name: &str,
        kind: StateMachineKind,
        media: &str,
        env: &str,
        minute: u32,
    ) -> RunningExecution {
        RunningExecution {
            arn: format!("arn:aws:states:us-east-1:000000000000:execution:sm:{name}"),
            name: name.to_string(),
            state_machine_kind: kind,
            input: json!({"media_type": media, "environment": env}),
            start_date: at(minute),
        }
    }

    fn refresh(media: MediaType, environment: Environment) -> ExecutionScope {
        ExecutionScope {
            kind: StateMachineKind::Refresh,
            media_type: media,
            environment,
        }
    }

    const ME: &str = "arn:aws:states:us-east-1:000000000000:execution:sm:me";

    use Environment::{Production, Staging};
    use MediaType::{Audio, Image};
    use StateMachineKind::{FilteredIndex, Refresh};

    #[test]
    fn another_refresh_of_the_same_environment_blocks_any_media() {
        let others = [
            running("audio-run", Refresh, "audio", "staging", 1),
            running("me", Refresh, "image", "staging", 5),
        ];
        let err = check_conflicts(ME, &refresh(Image, Staging), false, &others).unwrap_err();
        assert_eq!(err.kind, ErrorKind::ConcurrencyConflict);
        assert!(err.message.contains("audio-run"), "{}", err.message);
        assert!(
            err.message.contains("execution:sm:audio-run"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("2026-03-02T00:01:00"),
            "{}",
            err.message
        );
    }

    #[test]
    fn other_environment_does_not_block() {
        let others = [
            running("prod-run", Refresh, "image", "production", 1),
            running("me", Refresh, "image", "staging", 5),
        ];
        check_conflicts(ME, &refresh(Image, Staging), false, &others).unwrap();
    }

    #[test]
    fn filtered_rebuild_blocks_only_its_media() {
        let others = [running(
            "filtered-audio",
            FilteredIndex,
            "audio",
            "staging",
            1,
        )];
        check_conflicts(ME, &refresh(Image, Staging), false, &others).unwrap();
        let err = check_conflicts(ME, &refresh(Audio, Staging), false, &others).unwrap_err();
        assert!(
            err.message.contains("filtered-index rebuild"),
            "{}",
            err.message
        );
        assert!(err.message.contains("filtered-audio"));
        check_conflicts(ME, &refresh(Audio, Production), false, &others).unwrap();
    }

    #[test]
    fn filtered_rebuild_checks_refreshes_of_its_media() {
        let scope = ExecutionScope {
            kind: FilteredIndex,
            media_type: Image,
            environment: Production,
        };
        let others = [running("audio-refresh", Refresh, "audio", "production", 1)];
        check_conflicts(ME, &scope, false, &others).unwrap();
        let others = [running("image-refresh", Refresh, "image", "production", 1)];
        assert!(check_conflicts(ME, &scope, false, &others).is_err());
    }

    #[test]
    fn allow_concurrent_skips_the_check() {
        let others = [running("audio-run", Refresh, "audio", "staging", 1)];
        check_conflicts(ME, &refresh(Image, Staging), true, &others).unwrap();
    }

    #[test]
    fn own_execution_never_blocks() {
        let others = [running("me", Refresh, "image", "staging", 1)];
        check_conflicts(ME, &refresh(Image, Staging), false, &others).unwrap();
    }

    #[test]
    fn later_executions_yield_to_earlier_ones() {
        let others = [
            running("me", Refresh, "image", "staging", 1),
            running("later", Refresh, "audio", "staging", 2),
        ];
        check_conflicts(ME, &refresh(Image, Staging), false, &others).unwrap();
        // Same start: the ARN decides, so exactly one of the two goes ahead.
        let a = running("a", Refresh, "image", "staging", 3);
        let b = running("b", Refresh, "image", "staging", 3);
        let both = [a.clone(), b.clone()];
        assert!(check_conflicts(&a.arn, &refresh(Image, Staging), false, &both).is_ok());
        assert!(check_conflicts(&b.arn, &refresh(Image, Staging), false, &both).is_err());
    }

    #[test]
    fn not_listed_means_everything_running_is_earlier() {
        let others = [running("later-looking", Refresh, "image", "staging", 59)];
        assert!(check_conflicts(ME, &refresh(Image, Staging), false, &others).is_err());
    }

    #[test]
    fn unreadable_input_is_assumed_to_conflict() {
        let mut odd = running("odd", Refresh, "image", "staging", 1);
        odd.input = json!("not an object");
        assert!(check_conflicts(ME, &refresh(Audio, Production), false, &[odd]).is_err());
        let mut wrapped = running("wrapped", FilteredIndex, "x", "x", 1);
        wrapped.input = json!({"params": {"media_type": "audio", "environment": "staging"}});
        check_conflicts(
            ME,
            &refresh(Image, Staging),
            false,
            std::slice::from_ref(&wrapped),
        )
        .unwrap();
        assert!(check_conflicts(ME, &refresh(Audio, Staging), false, &[wrapped]).is_err());
    }

    #[test]
    fn the_earliest_blocker_is_named() {
        let others = [
            running("second", Refresh, "image", "staging", 2),
            running("first", FilteredIndex, "image", "staging", 1),
        ];
        let blocking = find_conflict(ME, &refresh(Image, Staging), false, &others).unwrap();
        assert_eq!(blocking.name, "first");
    }

    struct FixedLister(Vec<RunningExecution>);

    impl ExecutionLister for FixedLister {
        async fn list_running(
            &self,
            machines: &[WatchedStateMachine],
        ) -> Result<Vec<RunningExecution>, StepError> {
            let kinds: Vec<_> = machines.iter().map(|m| m.kind).collect();
            Ok(self
                .0
                .iter()
                .filter(|r| kinds.contains(&r.state_machine_kind))
                .cloned()
                .collect())
        }
    }

    #[tokio::test]
    async fn check_uses_the_lister_for_the_watched_machines() {
        let lister = FixedLister(vec![running(
            "filtered",
            FilteredIndex,
            "image",
            "staging",
            1,
        )]);
        let refresh_only = [WatchedStateMachine {
            kind: Refresh,
            arn: "arn:sm:refresh".into(),
        }];
        let both = [
            refresh_only[0].clone(),
            WatchedStateMachine {
                kind: FilteredIndex,
                arn: "arn:sm:filtered".into(),
            },
        ];
        let scope = refresh(Image, Staging);
        check_concurrency(&lister, ME, &scope, false, &refresh_only)
            .await
            .unwrap();
        assert!(check_concurrency(&lister, ME, &scope, false, &both)
            .await
            .is_err());
        check_concurrency(&lister, ME, &scope, true, &both)
            .await
            .unwrap();
    }
}
