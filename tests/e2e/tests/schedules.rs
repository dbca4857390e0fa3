//! The weekly schedules as deployed: one rule per media type and environment, each aimed at
//! the data refresh machine with its input; and a rule of that shape really starts a run.

use anyhow::{bail, Context, Result};
use aws_sdk_eventbridge::types::{RuleState, Target};
use aws_sdk_sfn::primitives::DateTime;
use e2e::{exclusive, load_sample_data, Stack};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const WEEKLY: &str = "cron(0 0 ? * MON *)";

struct ScheduleRule {
    name: String,
    expression: String,
    target: Target,
    input: Value,
}

async fn schedule_rules(stack: &Stack) -> Result<Vec<ScheduleRule>> {
    let mut rules = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = stack
            .events
            .list_rules()
            .set_next_token(next.take())
            .send()
            .await?;
        for rule in page.rules() {
            let Some(expression) = rule.schedule_expression() else {
                continue;
            };
            let name = rule.name().unwrap_or_default().to_string();
            let targets = stack
                .events
                .list_targets_by_rule()
                .rule(&name)
                .send()
                .await?;
            for target in targets.targets() {
                if target.arn() != stack.refresh_arn {
                    continue;
                }
                let input = serde_json::from_str(target.input().unwrap_or("null"))
                    .with_context(|| format!("rule {name}: target input is not JSON"))?;
                rules.push(ScheduleRule {
                    name: name.clone(),
                    expression: expression.to_string(),
                    target: target.clone(),
                    input,
                });
            }
        }
        match page.next_token() {
            Some(token) => next = Some(token.to_string()),
            None => return Ok(rules),
        }
    }
}

/// A refresh execution started after `since` with exactly `input`.
async fn execution_with_input(
    stack: &Stack,
    input: &Value,
    since: DateTime,
) -> Result<Option<String>> {
    let listed = stack
        .sfn
        .list_executions()
        .state_machine_arn(&stack.refresh_arn)
        .send()
        .await?;
    for execution in listed.executions() {
        if execution.start_date().secs() < since.secs() {
            continue;
        }
        let described = stack
            .sfn
            .describe_execution()
            .execution_arn(execution.execution_arn())
            .send()
            .await?;
        let started_with: Value = serde_json::from_str(described.input().unwrap_or("null"))?;
        if &started_with == input {
            return Ok(Some(execution.execution_arn().to_string()));
        }
    }
    Ok(None)
}

#[tokio::test]
async fn weekly_rules_start_the_refresh_of_each_media_and_environment() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    let rules = schedule_rules(&stack).await?;
    let mut by_scope: BTreeMap<(String, String), &ScheduleRule> = BTreeMap::new();
    for rule in &rules {
        assert_eq!(rule.expression, WEEKLY, "rule {}", rule.name);
        assert!(
            rule.target.role_arn().is_some(),
            "rule {} has no role to start executions",
            rule.name
        );
        let scope = (
            rule.input["media_type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            rule.input["environment"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        assert_eq!(
            rule.input,
            json!({"media_type": scope.0, "environment": scope.1, "wait_if_busy": true}),
            "rule {}: the scope, and queue behind the other media's run",
            rule.name
        );
        assert!(
            by_scope.insert(scope.clone(), rule).is_none(),
            "two schedules for {scope:?}"
        );
    }
    let scopes: Vec<(String, String)> = by_scope.keys().cloned().collect();
    let expected: Vec<(String, String)> = ["audio", "image"]
        .iter()
        .flat_map(|media| {
            ["production", "staging"]
                .iter()
                .map(move |env| (media.to_string(), env.to_string()))
        })
        .collect();
    assert_eq!(scopes, expected);

    // Locally the weekly rules are deployed DISABLED (ScheduleState): a probe rule with the
    // audio/staging rule's own target, due every minute, proves the target starts a run.
    load_sample_data()?;
    let deployed = by_scope[&("audio".to_string(), "staging".to_string())];
    let probe = format!("e2e-schedule-probe-{}", std::process::id());
    let since = DateTime::from(std::time::SystemTime::now());
    stack
        .events
        .put_rule()
        .name(&probe)
        .schedule_expression("rate(1 minute)")
        .state(RuleState::Enabled)
        .send()
        .await?;
    let fired = async {
        stack
            .events
            .put_targets()
            .rule(&probe)
            .targets(deployed.target.clone())
            .send()
            .await?;
        // LocalStack evaluates schedules once a minute.
        let deadline = Instant::now() + Duration::from_secs(150);
        while Instant::now() < deadline {
            if let Some(arn) = execution_with_input(&stack, &deployed.input, since).await? {
                return Ok(arn);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        bail!("the probe rule started no execution within 150 s")
    }
    .await;
    let removed = stack
        .events
        .remove_targets()
        .rule(&probe)
        .ids(deployed.target.id())
        .send()
        .await;
    stack.events.delete_rule().name(&probe).send().await?;
    removed?;
    let arn = fired?;

    let done = stack.wait(&arn, Duration::from_secs(600)).await?;
    assert_eq!(
        done.status, "SUCCEEDED",
        "the scheduled run: {:?} {:?}",
        done.error, done.cause
    );
    Ok(())
}
