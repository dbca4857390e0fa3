//! Harness for the end-to-end tests: the stack deployed by `localstack/deploy`, driven
//! through the real Step Functions API, checked in the real PostgreSQL and Elasticsearch.
//!
//! Every test here changes the shared `image`/`audio` tables and aliases, so tests take
//! [`exclusive`] first and run one at a time.

use anyhow::{bail, Context, Result};
pub use refresh_core::media::MediaType;
pub use refresh_core::worker_api::TaskStatus;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
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
    pub events: aws_sdk_eventbridge::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub stack_name: String,
    pub refresh_arn: String,
    pub filtered_arn: String,
    pub es_url: String,
    pub api_db_url: String,
    pub catalog_db_url: String,
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
            events: aws_sdk_eventbridge::Client::new(&config),
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            stack_name: required_env("STACK_NAME"),
            refresh_arn: required_env("DATA_REFRESH_STATE_MACHINE_ARN"),
            filtered_arn: required_env("FILTERED_INDEX_STATE_MACHINE_ARN"),
            es_url: required_env("ES_URL"),
            api_db_url: required_env("API_DB_URL"),
            catalog_db_url: required_env("CATALOG_DB_URL"),
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

    /// Starts an execution and waits for it to end (see [`Stack::wait`]).
    pub async fn run(
        &self,
        state_machine: &str,
        name: &str,
        input: Value,
        timeout: Duration,
    ) -> Result<Finished> {
        let arn = self.start(state_machine, name, input).await?;
        self.wait(&arn, timeout).await
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

    /// The worker-range state machine (named like the data refresh machine).
    pub fn worker_range_arn(&self) -> String {
        self.refresh_arn.replace("-data-refresh", "-worker-range")
    }

    /// The worker-range executions a data refresh run started (their input names it).
    pub async fn child_executions(&self, arn: &str) -> Result<Vec<String>> {
        let worker_range = self.worker_range_arn();
        let mut children = Vec::new();
        let mut pages = self
            .sfn
            .list_executions()
            .state_machine_arn(&worker_range)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for execution in page?.executions() {
                let described = self
                    .sfn
                    .describe_execution()
                    .execution_arn(execution.execution_arn())
                    .send()
                    .await?;
                let input: serde_json::Value =
                    serde_json::from_str(described.input().unwrap_or("null"))?;
                if input["root_execution_id"] == arn {
                    children.push(execution.execution_arn().to_string());
                }
            }
        }
        Ok(children)
    }

    /// Every document's `identifier` in an index or alias (a sample's size: one page).
    pub async fn identifiers(&self, index: &str) -> Result<BTreeSet<String>> {
        self.es(reqwest::Method::POST, &format!("{index}/_refresh"), None)
            .await?;
        let (status, body) = self
            .es(
                reqwest::Method::POST,
                &format!("{index}/_search"),
                Some(json!({"size": 10_000, "_source": ["identifier"], "track_total_hits": true})),
            )
            .await?;
        anyhow::ensure!(status == 200, "searching {index}: {status} {body}");
        let total = body["hits"]["total"]["value"].as_u64().unwrap_or(0);
        anyhow::ensure!(
            total <= 10_000,
            "{index} has {total} documents: more than one page"
        );
        body["hits"]["hits"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|hit| {
                hit["_source"]["identifier"]
                    .as_str()
                    .map(str::to_string)
                    .with_context(|| format!("a document of {index} without identifier: {hit}"))
            })
            .collect()
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

    /// Instances tagged with this execution that nobody has terminated (shutting-down counts
    /// as terminated: the call was made; the foreign-key job's worker is still shutting down
    /// when its run has just ended).
    pub async fn live_instances(&self, execution_arn: &str) -> Result<Vec<String>> {
        Ok(self
            .instances(execution_arn)
            .await?
            .into_iter()
            .filter(|i| i.state != "terminated" && i.state != "shutting-down")
            .map(|i| i.id)
            .collect())
    }

    /// Every instance tagged with this execution, terminated ones included.
    pub async fn instances(&self, execution_arn: &str) -> Result<Vec<Instance>> {
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
            .map(|i| Instance {
                id: i.instance_id().unwrap_or_default().to_string(),
                state: i
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default(),
                ip: i.private_ip_address().map(str::to_string),
                range: i
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some("refresh:range"))
                    .and_then(|t| t.value())
                    .map(str::to_string),
            })
            .collect())
    }

    /// How many instances the run launched per `refresh:range` tag (range index or SQL job),
    /// once every one of them is terminated. Terminating takes a moment after the call: the
    /// last worker (the foreign-key job's) is terminated just before the run ends.
    pub async fn launches_once_terminated(
        &self,
        execution_arn: &str,
    ) -> Result<BTreeMap<String, usize>> {
        self.eventually(
            "every instance of the run terminated",
            Duration::from_secs(60),
            || async {
                Ok(self
                    .instances(execution_arn)
                    .await?
                    .iter()
                    .all(|i| i.state == "terminated"))
            },
        )
        .await?;
        let mut launches = BTreeMap::new();
        for instance in self.instances(execution_arn).await? {
            *launches
                .entry(instance.range.unwrap_or_default())
                .or_default() += 1;
        }
        Ok(launches)
    }

    /// The worker token of an environment's secret (as the launch template hands it over).
    pub async fn worker_token(&self, environment: &str) -> Result<String> {
        let secret = self
            .secrets
            .get_secret_value()
            .secret_id(format!("{}/{environment}", self.stack_name))
            .send()
            .await
            .context("GetSecretValue")?;
        let value: Value = serde_json::from_str(secret.secret_string().unwrap_or_default())
            .context("the secret is not JSON")?;
        value["worker_token"]
            .as_str()
            .map(str::to_string)
            .context("the secret has no worker_token")
    }

    /// The tasks a worker reports (`GET /task`).
    pub async fn worker_tasks(
        &self,
        worker: &WorkerProcess,
        token: &str,
    ) -> Result<Vec<TaskStatus>> {
        let response = self
            .http
            .get(format!("http://{}/task", worker.address))
            .bearer_auth(token)
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "worker {} answered GET /task with {}",
                worker.address,
                response.status()
            );
        }
        Ok(response.json().await?)
    }

    /// Waits for a worker of this execution (in `environment`) whose task is active with a
    /// progress in `progress` (percent), and returns it with its instance.
    pub async fn worker_in_progress(
        &self,
        execution_arn: &str,
        environment: &str,
        progress: std::ops::Range<f64>,
        timeout: Duration,
    ) -> Result<(Instance, WorkerProcess, TaskStatus)> {
        let token = self.worker_token(environment).await?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            for instance in self.instances(execution_arn).await? {
                let Some(ip) = instance.ip.clone().filter(|_| instance.state == "running") else {
                    continue;
                };
                let Some(worker) = find_worker_process(&ip)? else {
                    continue;
                };
                let Ok(tasks) = self.worker_tasks(&worker, &token).await else {
                    continue;
                };
                if let Some(task) = tasks
                    .into_iter()
                    .find(|t| t.active && progress.contains(&t.progress))
                {
                    return Ok((instance, worker, task));
                }
            }
            if self.status(execution_arn).await? != "RUNNING" {
                bail!("execution {execution_arn} ended before a worker was seen at {progress:?}%");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("no worker of {execution_arn} reached {progress:?}% within {timeout:?}")
    }

    pub async fn catalog_db(&self) -> Result<tokio_postgres::Client> {
        let (client, connection) =
            tokio_postgres::connect(&self.catalog_db_url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Adds `copies` copies of every catalog row of `media` (new identifier, URL and foreign
    /// id, so they are distinct records), for runs that must last long enough to be hit.
    /// Returns the catalog's row count.
    pub async fn multiply_catalog(&self, media: MediaType, copies: u32) -> Result<i64> {
        let db = self.catalog_db().await?;
        let table = media.table();
        let columns: Vec<String> = db
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = $1 \
                 AND column_name NOT IN ('identifier', 'url', 'foreign_identifier') \
                 ORDER BY ordinal_position",
                &[&table],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let columns = columns.join(", ");
        db.execute(
            &format!(
                "INSERT INTO {table} (url, foreign_identifier, {columns}) \
                 SELECT url || '#copy-' || n, foreign_identifier || '-copy-' || n, {columns} \
                 FROM {table} CROSS JOIN generate_series(1, $1::int) AS n"
            ),
            &[&(copies as i32)],
        )
        .await?;
        let count: i64 = db
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await?
            .get(0);
        Ok(count)
    }

    /// Whether the API database has the temp table of `media`.
    pub async fn temp_table_exists(&self, media: MediaType) -> Result<bool> {
        let db = self.api_db().await?;
        let row = db
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&media.temp_table()])
            .await?;
        Ok(row.get(0))
    }

    /// Waits (up to 4 min) until a failed run's cleanup has removed its new indices and the
    /// temp table: the media's indices are those before the run again.
    pub async fn wait_until_cleaned_up(
        &self,
        media: MediaType,
        indices_before: &BTreeSet<String>,
    ) -> Result<()> {
        self.eventually(
            "new indices and temp table removed",
            Duration::from_secs(240),
            || async {
                Ok(self.media_indices(media).await? == *indices_before
                    && !self.temp_table_exists(media).await?)
            },
        )
        .await
    }

    /// Polls `check` until it holds or `timeout` passes; the last failure is the error.
    pub async fn eventually<F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let outcome = check().await;
            if matches!(outcome, Ok(true)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{what}: still not true after {timeout:?} (last check: {outcome:?})");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Puts the bundled sample back in the catalog and live: a test that promoted a grown
    /// catalog leaves the next test (which expects the sample) a far larger live index,
    /// which the drop and search guards would rightly refuse to shrink.
    pub async fn back_to_sample(&self, media: MediaType) -> Result<()> {
        load_sample_data()?;
        let back = self
            .run(
                &self.refresh_arn,
                "e2e-back-to-sample",
                json!({"media_type": media.as_str(), "environment": "staging",
                       "override_record_drop": true, "override_search_guard": true}),
                Duration::from_secs(900),
            )
            .await?;
        if back.status != "SUCCEEDED" {
            bail!(
                "going back to the sample: {} {:?} {:?}",
                back.status,
                back.error,
                back.cause
            );
        }
        Ok(())
    }

    /// Aliases `<media>` and `<media>-filtered` with their indices, the live table's row
    /// count, a checksum of its `(id, identifier)` pairs, indexes and constraints: what no
    /// failed run may change.
    pub async fn live_state(&self, media: MediaType) -> Result<LiveState> {
        let db = self.api_db().await?;
        let row = db
            .query_one(
                &format!(
                    "SELECT count(*), md5(coalesce(string_agg(id::text || ':' || identifier::text, ',' ORDER BY id), ''))
                       FROM {}",
                    media.table()
                ),
                &[],
            )
            .await?;
        Ok(LiveState {
            alias: self.alias_targets(media.alias()).await?,
            filtered_alias: self.alias_targets(media.filtered_alias()).await?,
            table_rows: row.get(0),
            table_checksum: row.get(1),
            table_shape: table_shape(&db, media.table()).await?,
        })
    }

    /// Indices whose name starts with `<media>-`, the ones a refresh creates.
    pub async fn media_indices(&self, media: MediaType) -> Result<BTreeSet<String>> {
        let (status, body) = self
            .es(
                reqwest::Method::GET,
                &format!("_cat/indices/{}-*?format=json&h=index", media.table()),
                None,
            )
            .await?;
        if status != 200 {
            bail!("_cat/indices answered {status}: {body}");
        }
        Ok(body
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|row| row["index"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
    pub state: String,
    pub ip: Option<String>,
    /// The `refresh:range` tag: which range the instance was launched for.
    pub range: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveState {
    pub alias: BTreeSet<String>,
    pub filtered_alias: BTreeSet<String>,
    pub table_rows: i64,
    /// md5 of every `id:identifier`, in id order.
    pub table_checksum: String,
    pub table_shape: BTreeSet<(String, String)>,
}

pub use testkit::reliability::{lost_documents, Trial};

/// Records one row of `RELIABILITY.md` (see `testkit::reliability`).
pub fn record(kind: &'static str, fault: &str, outcome: &str, lost: String, test: &str) {
    Trial {
        kind,
        fault: fault.to_string(),
        outcome: outcome.to_string(),
        lost,
        test: test.to_string(),
    }
    .record();
}

impl Stack {
    /// What a failed or refused run changed or left behind, against the state before it:
    /// "nothing", or each problem seen.
    pub async fn left_by_failure(
        &self,
        media: MediaType,
        execution_arn: &str,
        live_before: &LiveState,
        indices_before: &BTreeSet<String>,
    ) -> Result<String> {
        let live_changed = self.live_state(media).await? != *live_before;
        let instances_left = !self.live_instances(execution_arn).await?.is_empty();
        let temp_table_left = self.temp_table_exists(media).await?;
        let indices_changed = self.media_indices(media).await? != *indices_before;
        Ok(testkit::reliability::lost_on_failure(&[
            ("live table or aliases changed", live_changed),
            ("instances left running", instances_left),
            ("temp table left", temp_table_left),
            ("indices created or deleted", indices_changed),
        ]))
    }
}

/// A deployed state machine's definition changed for the guard's life (a limit the template
/// fixes, lowered for one start), and put back when dropped, even when the test fails.
/// Only executions started while it lives run the changed definition.
pub struct PatchedDefinition {
    state_machine_arn: String,
    original_definition: String,
}

impl PatchedDefinition {
    pub fn apply(state_machine_arn: &str, patch: impl FnOnce(&mut Value)) -> Result<Self> {
        let described = aws_cli_json(&[
            "stepfunctions",
            "describe-state-machine",
            "--state-machine-arn",
            state_machine_arn,
        ])?;
        let original_definition = described["definition"]
            .as_str()
            .context("no definition")?
            .to_string();
        let mut patched: Value = serde_json::from_str(&original_definition)?;
        patch(&mut patched);
        let guard = PatchedDefinition {
            state_machine_arn: state_machine_arn.to_string(),
            original_definition,
        };
        guard.update(&patched.to_string())?;
        Ok(guard)
    }

    fn update(&self, definition: &str) -> Result<()> {
        aws_cli_json(&[
            "stepfunctions",
            "update-state-machine",
            "--state-machine-arn",
            &self.state_machine_arn,
            "--definition",
            definition,
        ])?;
        Ok(())
    }
}

impl Drop for PatchedDefinition {
    fn drop(&mut self) {
        if let Err(error) = self.update(&self.original_definition) {
            eprintln!(
                "could not restore the definition of {}: {error:#}",
                self.state_machine_arn
            );
        }
    }
}

/// One environment variable of a deployed step function changed for the guard's life (a
/// deployment setting, such as `SERVING_REPLICAS`, set to what a fault needs), and put back
/// when dropped. `logical_id` is the template's name of the function (`FinishIndexFunction`).
pub struct FunctionEnvironment {
    function_name: String,
    original_variables: Value,
}

impl FunctionEnvironment {
    pub fn set(logical_id: &str, name: &str, value: &str) -> Result<Self> {
        let listed = aws_cli_json(&["lambda", "list-functions"])?;
        let function_name = listed["Functions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["FunctionName"].as_str())
            .find(|f| f.contains(&format!("-{logical_id}-")))
            .with_context(|| format!("no deployed function {logical_id}"))?
            .to_string();
        let configuration = aws_cli_json(&[
            "lambda",
            "get-function-configuration",
            "--function-name",
            &function_name,
        ])?;
        let original_variables = configuration["Environment"]["Variables"].clone();
        let mut variables = original_variables.clone();
        variables[name] = json!(value);
        let guard = FunctionEnvironment {
            function_name,
            original_variables,
        };
        guard.update(&variables)?;
        Ok(guard)
    }

    fn update(&self, variables: &Value) -> Result<()> {
        let environment = json!({ "Variables": variables }).to_string();
        aws_cli_json(&[
            "lambda",
            "update-function-configuration",
            "--function-name",
            &self.function_name,
            "--environment",
            &environment,
        ])?;
        // The next invocation must run with the new configuration, not a warm old one.
        aws_cli_json(&[
            "lambda",
            "wait",
            "function-updated",
            "--function-name",
            &self.function_name,
        ])?;
        Ok(())
    }
}

impl Drop for FunctionEnvironment {
    fn drop(&mut self) {
        if let Err(error) = self.update(&self.original_variables.clone()) {
            eprintln!(
                "could not restore the environment of {}: {error:#}",
                self.function_name
            );
        }
    }
}

/// Whether the CloudWatch alarm the local deploy creates for the stack's `AlarmNames`
/// (`LOCAL_ALARM_NAME` in `.local/stack.env`) has its actions enabled.
pub fn alarm_actions_enabled() -> Result<bool> {
    let name = required_env("LOCAL_ALARM_NAME");
    let described = aws_cli_json(&["cloudwatch", "describe-alarms", "--alarm-names", &name])?;
    described["MetricAlarms"][0]["ActionsEnabled"]
        .as_bool()
        .with_context(|| format!("no alarm {name}: {described}"))
}

/// A worker process the local EC2 emulation started: it binds to its instance's address.
#[derive(Debug, Clone)]
pub struct WorkerProcess {
    pub pid: u32,
    pub address: String,
}

/// Every process's pid and `/proc/<pid>` folder.
fn processes() -> Result<impl Iterator<Item = (u32, PathBuf)>> {
    Ok(std::fs::read_dir("/proc")?.filter_map(|entry| {
        let entry = entry.ok()?;
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        Some((pid, entry.path()))
    }))
}

/// Finds the worker bound to `ip` (`--bind <ip>:<port>` on its command line).
pub fn find_worker_process(ip: &str) -> Result<Option<WorkerProcess>> {
    let prefix = format!("{ip}:");
    for (pid, folder) in processes()? {
        let Ok(cmdline) = std::fs::read(folder.join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let bound = args
            .windows(2)
            .find(|pair| pair[0] == b"--bind")
            .and_then(|pair| std::str::from_utf8(pair[1]).ok())
            .filter(|address| address.starts_with(&prefix));
        let is_worker = args
            .first()
            .is_some_and(|program| program.ends_with(b"indexer-worker"));
        if let (Some(address), true) = (bound, is_worker) {
            return Ok(Some(WorkerProcess {
                pid,
                address: address.to_string(),
            }));
        }
    }
    Ok(None)
}

/// The last log lines of the deployed function whose log group name contains `function`
/// (CloudWatch Logs in LocalStack), for a failure message.
pub fn function_logs(function: &str) -> String {
    let aws = std::env::var_os("LOCALSTACK_VENV")
        .map(|venv| PathBuf::from(venv).join("bin/aws"))
        .unwrap_or_else(|| PathBuf::from("aws"));
    let run = |args: &[&str]| {
        std::process::Command::new(&aws)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let groups = run(&[
        "logs",
        "describe-log-groups",
        "--query",
        "logGroups[].logGroupName",
        "--output",
        "text",
    ]);
    let Some(group) = groups.split_whitespace().find(|g| g.contains(function)) else {
        return format!("(no log group containing {function:?})");
    };
    let messages = run(&[
        "logs",
        "filter-log-events",
        "--log-group-name",
        group,
        "--query",
        "events[].message",
        "--output",
        "text",
    ]);
    let lines: Vec<&str> = messages.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// SIGKILL, as a crash or the OOM killer would: no graceful shutdown.
pub fn kill_hard(pid: u32) -> Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()?;
    if !status.success() {
        bail!("kill -KILL {pid} failed: {status}");
    }
    Ok(())
}

/// Sends `signal` (`STOP`, `CONT`, …) to `pid`; a process already gone is not an error.
pub fn signal(pid: u32, signal: &str) -> Result<()> {
    let output = std::process::Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .output()?;
    if !output.status.success() && std::path::Path::new(&format!("/proc/{pid}")).exists() {
        bail!(
            "kill -{signal} {pid} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The processes the local Lambda host runs for one step's function (`REFRESH_STEP` in
/// their environment), warm or busy.
pub fn lambda_processes(step: &str) -> Result<Vec<u32>> {
    let wanted = format!("REFRESH_STEP={step}");
    let mut pids = Vec::new();
    for (pid, folder) in processes()? {
        let Ok(environ) = std::fs::read(folder.join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes()) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

pub fn local_dir() -> PathBuf {
    std::env::var_os("DATA_REFRESH_LOCAL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".local"))
}

/// Kills the local Elasticsearch (its whole process group, recorded by `localstack/up`).
pub fn kill_elasticsearch() -> Result<()> {
    let file = local_dir().join("run/elasticsearch.pgid");
    let pgid = std::fs::read_to_string(&file)
        .with_context(|| format!("reading {}", file.display()))?
        .trim()
        .to_string();
    if pgid.is_empty() || !pgid.bytes().all(|b| b.is_ascii_digit()) {
        bail!("{} holds no process group id", file.display());
    }
    let status = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .status()?;
    if !status.success() {
        bail!("kill -KILL -{pgid} (Elasticsearch) failed: {status}");
    }
    // Gone for good before anything restarts it: a JVM still dying holds the node lock and
    // the data directory, and a new node started meanwhile exits at once.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::process::Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stderr(std::process::Stdio::null())
        .status()?
        .success()
    {
        if Instant::now() > deadline {
            bail!("Elasticsearch's process group {pgid} outlived SIGKILL by 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Brings back whatever part of the local stack is down (`localstack/up` is idempotent).
pub fn restart_local_services() -> Result<()> {
    // Once more after a failure: a node that died on start (its log is in the error) says
    // nothing about the refresh under test, only that the restart raced something.
    let mut failures = Vec::new();
    for _ in 0..2 {
        let output = std::process::Command::new(repo_root().join("localstack/up"))
            .output()
            .context("running localstack/up")?;
        if output.status.success() {
            for failure in &failures {
                eprintln!("restart_local_services: the first localstack/up failed: {failure}");
            }
            return Ok(());
        }
        failures.push(format!(
            "({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    bail!("localstack/up failed twice:\n{}", failures.join("\n"))
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

/// Terms of `sample-data/sensitive-terms.txt` that the sample rows carry.
pub const SENSITIVE_TERMS: [&str; 2] = ["explicitterm", "offensiveterm"];

/// Documents with a sensitive term in their tags, title or description.
pub fn sensitive_query() -> Value {
    let terms: Vec<Value> = SENSITIVE_TERMS.iter().map(|t| json!(t)).collect();
    json!({"bool": {"should": [
        {"terms": {"tags.name.raw": terms}},
        {"terms": {"title.raw": terms}},
        {"terms": {"description.raw": terms}},
    ], "minimum_should_match": 1}})
}

/// The row limit the local deploy sets for non-production runs (`localstack/deploy`,
/// `RowLimitNonProduction`).
pub const LOCAL_ROW_LIMIT: i64 = 100_000;

/// What a staging refresh must index, computed from the catalog and the deleted list alone
/// (never from the table the copy wrote): the first `LOCAL_ROW_LIMIT` catalog rows by
/// identifier that are not deleted, less those removed from the source; the total and the
/// count per source (rows without a source are in the total only).
pub async fn expected_documents(
    catalog: &tokio_postgres::Client,
    api: &tokio_postgres::Client,
    media: MediaType,
) -> Result<(u64, BTreeMap<String, u64>)> {
    let deleted: Vec<uuid::Uuid> = api
        .query(
            &format!("SELECT identifier FROM {}", media.deleted_table()),
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let sql = format!(
        "WITH copied AS ( \
           SELECT source, removed_from_source FROM {table} \
           WHERE identifier <> ALL($1) ORDER BY identifier LIMIT $2 \
         ) \
         SELECT source, count(*) FROM copied WHERE NOT removed_from_source GROUP BY source",
        table = media.table()
    );
    let mut total = 0;
    let mut by_source = BTreeMap::new();
    for row in catalog.query(&sql, &[&deleted, &LOCAL_ROW_LIMIT]).await? {
        let source: Option<String> = row.get(0);
        let count = row.get::<_, i64>(1) as u64;
        total += count;
        if let Some(source) = source {
            by_source.insert(source, count);
        }
    }
    Ok((total, by_source))
}

/// The sensitive terms the local stack deploys (`SensitiveTermsUrl`): one a line, lowercased.
pub fn sensitive_terms_file() -> Result<BTreeSet<String>> {
    let path = repo_root().join("sample-data/sensitive-terms.txt");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(|line| line.trim().to_lowercase())
        .filter(|line| !line.is_empty())
        .collect())
}

/// The identifiers a refresh's filtered index must leave out, from the catalog rows and the
/// terms file alone: the rows [`expected_documents`] counts whose title, description or a
/// tag kept by the tag filter has a word (lowercased, split at anything not alphanumeric, as
/// the standard analyzer does for these ASCII samples) that is a sensitive term.
pub async fn expected_sensitive_identifiers(
    catalog: &tokio_postgres::Client,
    api: &tokio_postgres::Client,
    media: MediaType,
) -> Result<BTreeSet<String>> {
    let terms = sensitive_terms_file()?;
    let deleted: Vec<uuid::Uuid> = api
        .query(
            &format!("SELECT identifier FROM {}", media.deleted_table()),
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let sql = format!(
        "WITH copied AS ( \
           SELECT identifier, title, left(meta_data->>'description', {description_chars}) \
             AS description, tags, removed_from_source FROM {table} \
           WHERE identifier <> ALL($1) ORDER BY identifier LIMIT $2 \
         ) \
         SELECT identifier::text, title, description, tags FROM copied \
         WHERE NOT removed_from_source",
        table = media.table(),
        description_chars = refresh_core::document::DESCRIPTION_MAX_CHARS,
    );
    let has_term = |text: &str| {
        text.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .any(|word| terms.contains(word))
    };
    let filter = refresh_core::tags::TagFilterConfig::default();
    let mut sensitive = BTreeSet::new();
    for row in catalog.query(&sql, &[&deleted, &LOCAL_ROW_LIMIT]).await? {
        let title: Option<String> = row.get(1);
        let description: Option<String> = row.get(2);
        let tags: Option<Value> = row.get(3);
        let kept = filter.filter(tags.as_ref()).unwrap_or(Value::Null);
        let tag_names = kept
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|tag| tag["name"].as_str());
        let hit = title.as_deref().is_some_and(has_term)
            || description.as_deref().is_some_and(has_term)
            || tag_names.into_iter().any(has_term);
        if hit {
            sensitive.insert(row.get(0));
        }
    }
    Ok(sensitive)
}

/// Rows a refresh must index: copied (not deleted) and not removed from the source.
pub async fn eligible_rows(db: &tokio_postgres::Client, media: MediaType) -> Result<u64> {
    let sql = format!(
        "SELECT count(*) FROM {table} t WHERE NOT t.removed_from_source \
         AND NOT EXISTS (SELECT 1 FROM {deleted} d WHERE d.identifier = t.identifier)",
        table = media.table(),
        deleted = media.deleted_table()
    );
    let count: i64 = db.query_one(&sql, &[]).await?.get(0);
    Ok(count as u64)
}

/// Runs the AWS CLI of the local stack (`LOCALSTACK_VENV`) with `--output json` and parses
/// what it prints (the CLI follows every page itself).
pub fn aws_cli_json(args: &[&str]) -> Result<Value> {
    let aws = std::env::var_os("LOCALSTACK_VENV")
        .map(|venv| PathBuf::from(venv).join("bin/aws"))
        .unwrap_or_else(|| PathBuf::from("aws"));
    let output = std::process::Command::new(&aws)
        .args(args)
        .args(["--output", "json"])
        .output()
        .with_context(|| format!("running {} {}", aws.display(), args.join(" ")))?;
    if !output.status.success() {
        bail!(
            "aws {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("aws {}: not JSON", args.join(" ")))
}

/// Every log message of every Lambda function of the stack (CloudWatch Logs in LocalStack),
/// by log group; groups without a message are left out.
pub fn all_function_logs(
    stack_name: &str,
) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
    let prefix = format!("/aws/lambda/{stack_name}-");
    let groups = aws_cli_json(&[
        "logs",
        "describe-log-groups",
        "--log-group-name-prefix",
        &prefix,
    ])?;
    let mut logs = std::collections::BTreeMap::new();
    for group in groups["logGroups"].as_array().into_iter().flatten() {
        let Some(name) = group["logGroupName"].as_str() else {
            continue;
        };
        let events = aws_cli_json(&["logs", "filter-log-events", "--log-group-name", name])?;
        let messages: Vec<String> = events["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|event| event["message"].as_str().map(str::to_string))
            .collect();
        if !messages.is_empty() {
            logs.insert(name.to_string(), messages);
        }
    }
    Ok(logs)
}

/// The execution's whole history with every state's input and output
/// (`GetExecutionHistory` with `includeExecutionData`), as the API returns it.
pub fn execution_history_with_data(execution_arn: &str) -> Result<Vec<Value>> {
    let history = aws_cli_json(&[
        "stepfunctions",
        "get-execution-history",
        "--execution-arn",
        execution_arn,
        "--include-execution-data",
    ])?;
    history["events"]
        .as_array()
        .cloned()
        .context("GetExecutionHistory returned no events")
}

/// The console (stdout and stderr of the user data and the worker) of a local instance.
pub fn instance_console(instance_id: &str) -> Result<String> {
    let path = local_dir()
        .join("data/ec2")
        .join(instance_id)
        .join("console.log");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
