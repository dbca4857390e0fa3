//! Indexer worker instances on EC2: finding and terminating the ones an execution launched.
//!
//! The worker-range machine tags every worker with `refresh:execution=<data refresh
//! execution ARN>` and `refresh:range-execution=<its own execution ARN>`; an aborted or
//! timed-out execution never reaches its own terminate states, so cleanup finds the workers
//! of a data refresh run, or of one range of it, by those tags.

use aws_sdk_ec2::types::{Filter, InstanceStateName, Reservation};
use refresh_core::error::{ErrorKind, StepError, StepResult};

/// The tag naming the data refresh execution a worker works for (the IAM conditions on
/// launching and terminating match it too).
pub const EXECUTION_TAG: &str = "refresh:execution";
/// The tag naming the worker-range execution that launched a worker.
pub const RANGE_EXECUTION_TAG: &str = "refresh:range-execution";

/// States in which an instance still runs, or may run again, and so must be terminated.
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// States in which a worker may still send requests: live, or shutting down.
const NOT_GONE_STATES: [&str; 5] = ["pending", "running", "stopping", "stopped", "shutting-down"];

/// TerminateInstances takes at most this many ids per call.
const TERMINATE_BATCH: usize = 1000;

/// The DescribeInstances filters selecting the live workers of one data refresh execution.
pub fn execution_filters(execution_arn: &str) -> Vec<Filter> {
    filters_in_states(EXECUTION_TAG, execution_arn, &LIVE_STATES)
}

fn filters_in_states(tag: &str, execution_arn: &str, states: &[&str]) -> Vec<Filter> {
    vec![
        Filter::builder()
            .name(format!("tag:{tag}"))
            .values(execution_arn)
            .build(),
        Filter::builder()
            .name("instance-state-name")
            .set_values(Some(states.iter().map(|s| s.to_string()).collect()))
            .build(),
    ]
}

/// Waits until no worker of `execution_arn` is live or shutting down (a worker finishes its
/// in-flight bulk requests on SIGTERM, and one landing after its index was deleted would
/// re-create it). A worker that is still live meanwhile (a launch that was in flight when
/// its execution was stopped) is terminated too. Returns the ids still not gone when
/// `timeout` passed (empty: all gone).
pub async fn wait_until_gone(
    client: &aws_sdk_ec2::Client,
    execution_arn: &str,
    timeout: std::time::Duration,
) -> StepResult<Vec<String>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let described = client
            .describe_instances()
            .set_filters(Some(filters_in_states(
                EXECUTION_TAG,
                execution_arn,
                &NOT_GONE_STATES,
            )))
            .send()
            .await
            .map_err(|e| ec2_error("DescribeInstances", &e))?;
        let reservations = described.reservations();
        let remaining: Vec<String> = reservations
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| {
                !matches!(
                    i.state().and_then(|s| s.name()),
                    Some(InstanceStateName::Terminated)
                )
            })
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        if remaining.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(remaining);
        }
        terminate_ids(client, &live_instance_ids(reservations)).await?;
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Instance ids in `reservations` that are not already going away, in order, without repeats.
pub fn live_instance_ids(reservations: &[Reservation]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for instance in reservations.iter().flat_map(|r| r.instances()) {
        let gone = matches!(
            instance.state().and_then(|s| s.name()),
            Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated)
        );
        if let Some(id) = instance.instance_id() {
            if !gone && !ids.iter().any(|known| known == id) {
                ids.push(id.to_string());
            }
        }
    }
    ids
}

/// Every live instance whose `tag` is `execution_arn`, across all result pages.
async fn find_tagged_instances(
    client: &aws_sdk_ec2::Client,
    tag: &str,
    execution_arn: &str,
) -> StepResult<Vec<String>> {
    let mut pages = client
        .describe_instances()
        .set_filters(Some(filters_in_states(tag, execution_arn, &LIVE_STATES)))
        .into_paginator()
        .send();
    let mut reservations = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| ec2_error("DescribeInstances", &e))?;
        reservations.extend(page.reservations().iter().cloned());
    }
    Ok(live_instance_ids(&reservations))
}

/// Terminates every live worker of the data refresh execution `execution_arn` (all its
/// ranges); returns the ids it asked EC2 to terminate (empty when there were none). Safe to
/// repeat.
pub async fn terminate_execution_instances(
    client: &aws_sdk_ec2::Client,
    execution_arn: &str,
) -> StepResult<Vec<String>> {
    let ids = find_tagged_instances(client, EXECUTION_TAG, execution_arn).await?;
    terminate_ids(client, &ids).await?;
    if !ids.is_empty() {
        tracing::info!(execution = execution_arn, instances = ?ids, "terminated indexer workers");
    }
    Ok(ids)
}

/// Terminates the live workers one worker-range execution launched, and no other.
pub async fn terminate_range_execution_instances(
    client: &aws_sdk_ec2::Client,
    range_execution_arn: &str,
) -> StepResult<Vec<String>> {
    let ids = find_tagged_instances(client, RANGE_EXECUTION_TAG, range_execution_arn).await?;
    terminate_ids(client, &ids).await?;
    if !ids.is_empty() {
        tracing::info!(execution = range_execution_arn, instances = ?ids, "terminated the range's indexer workers");
    }
    Ok(ids)
}

async fn terminate_ids(client: &aws_sdk_ec2::Client, ids: &[String]) -> StepResult<()> {
    for batch in ids.chunks(TERMINATE_BATCH) {
        match client
            .terminate_instances()
            .set_instance_ids(Some(batch.to_vec()))
            .send()
            .await
        {
            Ok(_) => {}
            // Terminated between describe and terminate (by the execution itself): fine.
            Err(e) if is_not_found(&e) => {
                terminate_one_by_one(client, batch).await?;
            }
            Err(e) => return Err(ec2_error("TerminateInstances", &e)),
        }
    }
    Ok(())
}

/// After a batch failed because one id vanished, terminate the rest individually.
async fn terminate_one_by_one(client: &aws_sdk_ec2::Client, ids: &[String]) -> StepResult<()> {
    for id in ids {
        match client.terminate_instances().instance_ids(id).send().await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(ec2_error("TerminateInstances", &e)),
        }
    }
    Ok(())
}

fn is_not_found<E, R>(error: &aws_sdk_ec2::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_ec2::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code.starts_with("InvalidInstanceID"))
}

fn ec2_error<E, R>(operation: &str, error: &aws_sdk_ec2::error::SdkError<E, R>) -> StepError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StepError::new(
        ErrorKind::Internal,
        format!(
            "EC2 {operation} failed: {}",
            aws_sdk_ec2::error::DisplayErrorContext(error)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{Instance, InstanceState};

    fn instance(id: &str, state: InstanceStateName) -> Instance {
        Instance::builder()
            .instance_id(id)
            .state(InstanceState::builder().name(state).build())
            .build()
    }

    #[test]
    fn filters_select_the_execution_tag_and_live_states() {
        let filters = execution_filters("arn:aws:states:us-east-1:1:execution:sm:run-1");
        assert_eq!(filters[0].name(), Some("tag:refresh:execution"));
        assert_eq!(
            filters[0].values(),
            ["arn:aws:states:us-east-1:1:execution:sm:run-1"]
        );
        assert_eq!(filters[1].name(), Some("instance-state-name"));
        assert_eq!(
            filters[1].values(),
            ["pending", "running", "stopping", "stopped"]
        );
        let range = filters_in_states(RANGE_EXECUTION_TAG, "arn:x", &LIVE_STATES);
        assert_eq!(range[0].name(), Some("tag:refresh:range-execution"));
    }

    #[test]
    fn live_ids_skip_instances_already_going_away_and_repeats() {
        let reservations = vec![
            Reservation::builder()
                .instances(instance("i-1", InstanceStateName::Running))
                .instances(instance("i-2", InstanceStateName::ShuttingDown))
                .build(),
            Reservation::builder()
                .instances(instance("i-3", InstanceStateName::Pending))
                .instances(instance("i-4", InstanceStateName::Terminated))
                .instances(instance("i-1", InstanceStateName::Running))
                .instances(instance("i-5", InstanceStateName::Stopped))
                .build(),
        ];
        assert_eq!(live_instance_ids(&reservations), ["i-1", "i-3", "i-5"]);
        assert!(live_instance_ids(&[]).is_empty());
    }
}
