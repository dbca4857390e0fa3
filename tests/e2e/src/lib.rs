//! Harness for the end-to-end tests: the stack deployed by `localstack/deploy`, driven
//! through the real Step Functions API, checked in the real PostgreSQL and Elasticsearch.
//!
//! Every test here changes the shared `image`/`audio` tables and aliases, so tests take
//! [`exclusive`] first and run one at a time.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, MutexGuard};

static SHARED_STACK: Mutex<()> = Mutex::const_new(());

/// Serialises the tests that drive the shared stack.
pub async fn exclusive() -> MutexGuard<'static, ()> {
    SHARED_STACK.lock().await
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test (it deploys the stack and exports it)")
    })
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub struct Stack {
    pub sfn: aws_sdk_sfn::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub refresh_arn: String,
    pub filtered_arn: String,
    pub es_url: String,
    pub api_db_url: String,
    pub http: reqwest::Client,
}

#[derive(Debug, Clone)]
pub struct Finished {
    pub arn: String,
    pub status: String,
    pub output: Value,
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Stack {
    pub async fn connect() -> Stack {
        let config = aws_config::load_from_env().await;
        Stack {
            sfn: aws_sdk_sfn::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            refresh_arn: required_env("DATA_REFRESH_STATE_MACHINE_ARN"),
            filtered_arn: required_env("FILTERED_INDEX_STATE_MACHINE_ARN"),
            es_url: required_env("ES_URL"),
            api_db_url: required_env("API_DB_URL"),
            http: reqwest::Client::new(),
        }
    }

    pub async fn start(&self, state_machine: &str, name: &str, input: Value) -> Result<String> {
        let unique = format!("{name}-{}", std::process::id());
        let started = self
            .sfn
            .start_execution()
            .state_machine_arn(state_machine)
            .name(format!("{unique}-{}", chrono_free_millis()))
            .input(input.to_string())
            .send()
            .await
            .context("StartExecution")?;
        Ok(started.execution_arn().to_string())
    }

    pub async fn status(&self, arn: &str) -> Result<String> {
        let described = self
            .sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await?;
        Ok(described.status().as_str().to_string())
    }

    /// Waits for the execution to end; stops it (and fails) past `timeout`.
    pub async fn wait(&self, arn: &str, timeout: Duration) -> Result<Finished> {
        let deadline = Instant::now() + timeout;
        loop {
            let described = self
                .sfn
                .describe_execution()
                .execution_arn(arn)
                .send()
                .await?;
            let status = described.status().as_str().to_string();
            if status != "RUNNING" {
                let output = described
                    .output()
                    .map(serde_json::from_str)
                    .transpose()
                    .context("execution output is not JSON")?
                    .unwrap_or(Value::Null);
                return Ok(Finished {
                    arn: arn.to_string(),
                    status,
                    output,
                    error: described.error().map(str::to_string),
                    cause: described.cause().map(str::to_string),
                });
            }
            if Instant::now() > deadline {
                let _ = self
                    .sfn
                    .stop_execution()
                    .execution_arn(arn)
                    .cause("e2e timeout")
                    .send()
                    .await;
                bail!(
                    "execution {arn} still RUNNING after {timeout:?}; history: {}",
                    self.state_names(arn).await?.join(" → ")
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Names of the states entered so far, in order.
    pub async fn state_names(&self, arn: &str) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut pages = self
            .sfn
            .get_execution_history()
            .execution_arn(arn)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for event in page?.events() {
                if let Some(entered) = event.state_entered_event_details() {
                    names.push(entered.name().to_string());
                }
            }
        }
        Ok(names)
    }

    /// Waits until the execution has entered `state`.
    pub async fn wait_for_state(&self, arn: &str, state: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self
                .state_names(arn)
                .await?
                .iter()
                .any(|name| name == state)
            {
                return Ok(());
            }
            if self.status(arn).await? != "RUNNING" {
                bail!("execution {arn} ended before entering {state:?}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        bail!("execution {arn} did not enter {state:?} within {timeout:?}")
    }

    pub async fn es(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut request = self.http.request(
            method,
            format!("{}/{}", self.es_url, path.trim_start_matches('/')),
        );
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// The indices an alias points at (empty when the alias does not exist).
    pub async fn alias_targets(&self, alias: &str) -> Result<BTreeSet<String>> {
        let (status, body) = self
            .es(reqwest::Method::GET, &format!("_alias/{alias}"), None)
            .await?;
        if status == 404 {
            return Ok(BTreeSet::new());
        }
        Ok(body
            .as_object()
            .map(|indices| indices.keys().cloned().collect())
            .unwrap_or_default())
    }

    pub async fn index_exists(&self, index: &str) -> Result<bool> {
        let (status, _) = self.es(reqwest::Method::HEAD, index, None).await?;
        Ok(status == 200)
    }

    pub async fn count(&self, index: &str, query: Value) -> Result<u64> {
        self.es(reqwest::Method::POST, &format!("{index}/_refresh"), None)
            .await?;
        let (status, body) = self
            .es(
                reqwest::Method::POST,
                &format!("{index}/_count"),
                Some(json!({ "query": query })),
            )
            .await?;
        if status != 200 {
            bail!("count on {index} answered {status}: {body}");
        }
        body["count"].as_u64().context("count missing")
    }

    pub async fn api_db(&self) -> Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.api_db_url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Instances tagged with this execution that are not terminated.
    pub async fn live_instances(&self, execution_arn: &str) -> Result<Vec<String>> {
        let described = self
            .ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:refresh:execution")
                    .values(execution_arn)
                    .build(),
            )
            .send()
            .await?;
        Ok(described
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| {
                !matches!(
                    i.state().and_then(|s| s.name()),
                    Some(aws_sdk_ec2::types::InstanceStateName::Terminated)
                )
            })
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect())
    }
}

fn chrono_free_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// Replaces the catalog with the bundled sample rows (`sample-data/load`).
pub fn load_sample_data() -> Result<()> {
    let status = std::process::Command::new(repo_root().join("sample-data/load"))
        .status()
        .context("running sample-data/load")?;
    if !status.success() {
        bail!("sample-data/load failed: {status}");
    }
    Ok(())
}

/// Index and constraint names (with definitions) of an API table, to compare before/after.
pub async fn table_shape(
    db: &tokio_postgres::Client,
    table: &str,
) -> Result<BTreeSet<(String, String)>> {
    let indexes = db
        .query("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = $1", &[&table])
        .await?;
    let constraints = db
        .query(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint \
             WHERE conrelid = (SELECT oid FROM pg_class WHERE relname = $1 AND relnamespace = 'public'::regnamespace)",
            &[&table],
        )
        .await?;
    Ok(indexes
        .iter()
        .chain(constraints.iter())
        .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1)))
        .collect())
}
