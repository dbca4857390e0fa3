//! The filtered index: an async, sliced, throttled `_reindex` that leaves out documents with a
//! sensitive term in their tags, title or description, and the task poll.

use super::{error_reason, SearchClient};
use crate::config::DEFAULT_REINDEX_THROTTLE_RPS;
use crate::error::{ErrorKind, StepError, StepResult};
use crate::names::validate_index_name;
use elasticsearch::http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{json, Value};

/// The `.raw` sub-fields (standard analyzer: lower-cased, unstemmed tokens) the sensitive
/// terms are matched against.
pub const SENSITIVE_FIELDS: [&str; 3] = ["tags.name.raw", "title.raw", "description.raw"];

/// Elasticsearch's default `index.max_terms_count`: a larger `terms` query is rejected.
pub const MAX_TERMS: usize = 65_536;

/// Documents per scroll batch of the reindex.
pub const REINDEX_BATCH_SIZE: u32 = 1000;

/// How many failure descriptions a task status carries.
const MAX_REPORTED_FAILURES: usize = 5;

/// How many slices the reindex runs in parallel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slices {
    /// One per shard of the source (`slices=auto`).
    Auto,
    Count(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReindexOptions {
    /// `requests_per_second`; `None` runs unthrottled.
    pub requests_per_second: Option<u32>,
    pub slices: Slices,
}

impl Default for ReindexOptions {
    fn default() -> Self {
        ReindexOptions {
            requests_per_second: Some(DEFAULT_REINDEX_THROTTLE_RPS),
            slices: Slices::Auto,
        }
    }
}

/// The query that keeps only documents without any of `terms` in [`SENSITIVE_FIELDS`].
/// Terms are normalised by [`crate::sensitive::normalize_terms`] (trimmed, lower-cased as the
/// `.raw` fields' tokens are, de-duplicated), the rule [`crate::sensitive::SensitiveTerms`]
/// shares; with no terms the query matches everything.
pub fn sensitive_terms_query(terms: &[String]) -> StepResult<Value> {
    let terms = crate::sensitive::normalize_terms(terms)?;
    if terms.is_empty() {
        return Ok(json!({ "match_all": {} }));
    }
    let must_not: Vec<Value> = SENSITIVE_FIELDS
        .iter()
        .map(|field| json!({ "terms": { *field: &terms } }))
        .collect();
    Ok(json!({ "bool": { "must_not": must_not } }))
}

/// The documents [`sensitive_terms_query`] leaves out (none when `terms` is empty).
pub fn sensitive_documents_query(terms: &[String]) -> StepResult<Value> {
    Ok(json!({ "bool": { "must_not": [sensitive_terms_query(terms)?] } }))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilteredReindexStarted {
    pub task_id: String,
    pub terms_count: usize,
    /// The destination index was created by this call (false: it already existed).
    pub created_index: bool,
}

/// Creates `dest` with the settings and mappings of `source` (unless a retry already did) and
/// starts `_reindex` from `source` into `dest` as a background task, leaving out documents
/// with a sensitive term. Returns the task id to poll with [`get_task`].
pub async fn start_filtered_reindex(
    client: &SearchClient,
    source: &str,
    dest: &str,
    sensitive_terms: &[String],
    options: &ReindexOptions,
) -> StepResult<FilteredReindexStarted> {
    validate_index_name(source)?;
    validate_index_name(dest)?;
    if source == dest {
        return Err(StepError::invalid_input(format!(
            "cannot reindex {source} into itself"
        )));
    }
    if let Slices::Count(0) = options.slices {
        return Err(StepError::invalid_input("slices must be at least 1"));
    }
    if options.requests_per_second == Some(0) {
        return Err(StepError::invalid_input(
            "requests_per_second must be positive (or unthrottled)",
        ));
    }
    let query = sensitive_terms_query(sensitive_terms)?;
    let terms_count = match &query["bool"]["must_not"][0]["terms"][SENSITIVE_FIELDS[0]] {
        Value::Array(terms) => terms.len(),
        _ => 0,
    };
    let created = super::index::create_index_like(client, source, dest).await?;
    let body = json!({
        "source": { "index": source, "query": query, "size": REINDEX_BATCH_SIZE },
        "dest": { "index": dest },
    });
    let query_string = vec![
        ("wait_for_completion", "false".to_string()),
        (
            "slices",
            match options.slices {
                Slices::Auto => "auto".to_string(),
                Slices::Count(n) => n.to_string(),
            },
        ),
        (
            "requests_per_second",
            match options.requests_per_second {
                Some(rps) => rps.to_string(),
                None => "-1".to_string(),
            },
        ),
    ];
    let response = client
        .call(
            "start reindex",
            Method::Post,
            "/_reindex",
            &query_string,
            Some(&body),
        )
        .await?
        .into_success(&format!("reindex {source} into {dest}"))?;
    let task_id = response["task"]
        .as_str()
        .ok_or_else(|| {
            StepError::new(
                ErrorKind::Internal,
                "Elasticsearch started the reindex but returned no task id",
            )
        })?
        .to_string();
    tracing::info!(
        source,
        dest,
        task_id,
        terms_count,
        "filtered reindex started"
    );
    Ok(FilteredReindexStarted {
        task_id,
        terms_count,
        created_index: created.created,
    })
}

/// Progress of an Elasticsearch task (`GET _tasks/<id>`), summed over its slices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskStatus {
    pub task_id: String,
    pub completed: bool,
    pub total: u64,
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    pub version_conflicts: u64,
    /// Number of failed documents / shards reported by the finished task.
    pub failures: u64,
    /// The first few failures, `type: reason`.
    pub first_failures: Vec<String>,
    /// The task's own error (it stopped), or why it was cancelled.
    pub error: Option<String>,
}

impl TaskStatus {
    /// Completed with no failure and no error.
    pub fn succeeded(&self) -> bool {
        self.completed && self.failures == 0 && self.error.is_none()
    }
}

/// `<node id>:<number>`, the only task id shape Elasticsearch hands out.
fn validate_task_id(task_id: &str) -> StepResult<()> {
    let valid = task_id.split_once(':').is_some_and(|(node, number)| {
        !node.is_empty()
            && node
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
    });
    if valid {
        Ok(())
    } else {
        Err(StepError::invalid_input(format!(
            "{task_id:?} is not an Elasticsearch task id (<node>:<number>)"
        )))
    }
}

/// Reads a task's status. An unknown task is an `InvalidState` error.
pub async fn get_task(client: &SearchClient, task_id: &str) -> StepResult<TaskStatus> {
    validate_task_id(task_id)?;
    let response = client
        .call(
            "get task",
            Method::Get,
            &format!("/_tasks/{task_id}"),
            &[],
            None,
        )
        .await?;
    if response.status == StatusCode::NOT_FOUND {
        return Err(StepError::invalid_state(format!(
            "Elasticsearch task {task_id} does not exist"
        )));
    }
    let body = response.into_success(&format!("get task {task_id}"))?;
    Ok(parse_task(task_id, &body))
}

fn parse_task(task_id: &str, body: &Value) -> TaskStatus {
    let completed = body["completed"].as_bool().unwrap_or(false);
    // A finished task's `response` holds the final totals; a running one only `task.status`.
    let counts = if completed && body["response"].is_object() {
        &body["response"]
    } else {
        &body["task"]["status"]
    };
    let count = |key: &str| counts[key].as_u64().unwrap_or(0);
    let failures = match &body["response"]["failures"] {
        Value::Array(items) => items.as_slice(),
        _ => &[],
    };
    let first_failures = failures
        .iter()
        .take(MAX_REPORTED_FAILURES)
        .map(describe_failure)
        .collect();
    let error = if body["error"].is_object() {
        Some(error_reason(&json!({ "error": body["error"] })))
    } else {
        body["response"]["canceled"]
            .as_str()
            .or_else(|| body["task"]["status"]["canceled"].as_str())
            .map(|reason| format!("cancelled: {reason}"))
    };
    TaskStatus {
        task_id: task_id.to_string(),
        completed,
        total: count("total"),
        created: count("created"),
        updated: count("updated"),
        deleted: count("deleted"),
        version_conflicts: count("version_conflicts"),
        failures: failures.len() as u64,
        first_failures,
        error,
    }
}

/// Top-level `_reindex` tasks in a `GET _tasks?actions=*reindex&detailed` listing that write
/// into one of `dests`. Slice sub-tasks are left out: cancelling the parent cancels them.
pub fn reindex_tasks_into(listing: &Value, dests: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let Some(nodes) = listing["nodes"].as_object() else {
        return found;
    };
    for node in nodes.values() {
        let Some(tasks) = node["tasks"].as_object() else {
            continue;
        };
        for (task_id, task) in tasks {
            let description = task["description"].as_str().unwrap_or_default();
            // "reindex from [src] to [dest]" (7.x appends "[_doc]").
            let writes_into = dests
                .iter()
                .any(|dest| description.contains(&format!(" to [{dest}]")));
            if writes_into && task["parent_task_id"].is_null() {
                found.push(task_id.clone());
            }
        }
    }
    found.sort();
    found
}

/// Cancels every running `_reindex` into one of `dests`, so that an index deleted by cleanup
/// is not written (and, with automatic index creation, re-created) by a task the aborted run
/// left behind. Returns the cancelled task ids.
pub async fn cancel_reindex_into(
    client: &SearchClient,
    dests: &[String],
) -> StepResult<Vec<String>> {
    for dest in dests {
        validate_index_name(dest)?;
    }
    if dests.is_empty() {
        return Ok(Vec::new());
    }
    let listing = client
        .call(
            "list reindex tasks",
            Method::Get,
            "/_tasks",
            &[
                ("actions", "*reindex".to_string()),
                ("detailed", "true".to_string()),
            ],
            None,
        )
        .await?
        .into_success("list reindex tasks")?;
    let tasks = reindex_tasks_into(&listing, dests);
    for task_id in &tasks {
        validate_task_id(task_id)?;
        let response = client
            .call(
                "cancel reindex task",
                Method::Post,
                &format!("/_tasks/{task_id}/_cancel"),
                &[],
                None,
            )
            .await?;
        // A task that finished in between is gone: nothing left to cancel.
        if response.status != StatusCode::NOT_FOUND {
            response.into_success(&format!("cancel task {task_id}"))?;
        }
        tracing::info!(task_id, "cancelled a reindex into an index being removed");
    }
    Ok(tasks)
}

/// A bulk failure (`{index, id, cause}`) or a search failure (`{shard, reason}`).
fn describe_failure(failure: &Value) -> String {
    let cause = if failure["cause"].is_object() {
        &failure["cause"]
    } else {
        &failure["reason"]
    };
    let reason = error_reason(&json!({ "error": cause }));
    match failure["id"].as_str() {
        Some(id) => format!("document {id}: {reason}"),
        None => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn query_excludes_terms_on_the_raw_fields() {
        let q = sensitive_terms_query(&["Bad".into(), " worse ".into(), "bad".into(), "".into()])
            .unwrap();
        assert_eq!(
            q,
            json!({"bool": {"must_not": [
                {"terms": {"tags.name.raw": ["bad", "worse"]}},
                {"terms": {"title.raw": ["bad", "worse"]}},
                {"terms": {"description.raw": ["bad", "worse"]}}
            ]}})
        );
        assert_eq!(
            sensitive_terms_query(&[]).unwrap(),
            json!({"match_all": {}})
        );
        assert_eq!(
            sensitive_terms_query(&["  ".into()]).unwrap(),
            json!({"match_all": {}})
        );
    }

    #[test]
    fn terms_are_lower_cased_as_the_analyzer_lower_cases_tokens() {
        // Java's simple mapping per character: `İ` → `i` (not `i̇`), `Σ` → `σ` even at the
        // end of a word: the tokens of "İSTANBUL" and "ΟΔΟΣ" are "istanbul" and "οδοσ".
        let q = sensitive_terms_query(&["İSTANBUL".into(), "ΟΔΟΣ".into()]).unwrap();
        assert_eq!(
            q["bool"]["must_not"][0],
            json!({"terms": {"tags.name.raw": ["istanbul", "οδοσ"]}})
        );
        assert_eq!(
            sensitive_documents_query(&["x".into()]).unwrap(),
            json!({"bool": {"must_not": [{"bool": {"must_not": [
                {"terms": {"tags.name.raw": ["x"]}},
                {"terms": {"title.raw": ["x"]}},
                {"terms": {"description.raw": ["x"]}}
            ]}}]}})
        );
    }

    #[test]
    fn too_many_terms_are_refused() {
        let terms: Vec<String> = (0..=MAX_TERMS).map(|i| format!("t{i}")).collect();
        assert_eq!(
            sensitive_terms_query(&terms).unwrap_err().kind,
            ErrorKind::InvalidInput
        );
    }

    #[test]
    fn only_top_level_reindex_tasks_into_the_named_indices_are_picked() {
        let listing = json!({"nodes": {
            "n1": {"tasks": {
                "n1:10": {"action": "indices:data/write/reindex",
                          "description": "reindex from [image-a] to [image-a-filtered][_doc]"},
                "n1:11": {"action": "indices:data/write/reindex", "parent_task_id": "n1:10",
                          "description": "reindex from [image-a] to [image-a-filtered][_doc]"},
                "n1:12": {"action": "indices:data/write/reindex",
                          "description": "reindex from [image-a] to [image-a-filtered-2][_doc]"},
            }},
            "n2": {"tasks": {
                "n2:5": {"action": "indices:data/write/reindex",
                         "description": "reindex from [audio-b] to [audio-b-filtered]"},
            }},
        }});
        assert_eq!(
            reindex_tasks_into(
                &listing,
                &["image-a-filtered".into(), "audio-b-filtered".into()]
            ),
            ["n1:10", "n2:5"]
        );
        assert!(reindex_tasks_into(&listing, &["image-a".into()]).is_empty());
        assert!(reindex_tasks_into(&json!({}), &["image-a-filtered".into()]).is_empty());
    }

    #[test]
    fn task_ids_are_validated() {
        assert!(validate_task_id("oTUltX4IQMOUUVeiohTt8A:12345").is_ok());
        assert!(validate_task_id("node_1-a:1").is_ok());
        for bad in ["", "abc", ":1", "a:", "a:1x", "a/b:1", "a:1/../x", "a:1:2"] {
            assert_eq!(
                validate_task_id(bad).unwrap_err().kind,
                ErrorKind::InvalidInput,
                "{bad}"
            );
        }
    }

    #[test]
    fn running_task_reports_status_counts() {
        let body = json!({
            "completed": false,
            "task": {"status": {"total": 100, "created": 40, "updated": 0, "deleted": 0, "version_conflicts": 0}}
        });
        let status = parse_task("n:1", &body);
        assert!(!status.completed && !status.succeeded());
        assert_eq!(
            (status.total, status.created, status.failures),
            (100, 40, 0)
        );
    }

    #[test]
    fn finished_task_reports_response_and_failures() {
        let body = json!({
            "completed": true,
            "task": {"status": {"total": 10, "created": 3}},
            "response": {"total": 10, "created": 8, "updated": 0, "failures": [
                {"index": "x", "id": "5", "cause": {"type": "mapper_parsing_exception", "reason": "bad"}, "status": 400},
                {"shard": 0, "reason": {"type": "search_phase_execution_exception", "reason": "boom"}}
            ]}
        });
        let status = parse_task("n:1", &body);
        assert_eq!((status.total, status.created, status.failures), (10, 8, 2));
        assert_eq!(
            status.first_failures,
            vec![
                "document 5: mapper_parsing_exception: bad",
                "search_phase_execution_exception: boom"
            ]
        );
        assert!(!status.succeeded());
        let ok = parse_task(
            "n:1",
            &json!({"completed": true, "response": {"total": 2, "created": 2, "failures": []}}),
        );
        assert!(ok.succeeded());
    }

    #[test]
    fn task_error_and_cancellation_are_reported() {
        let failed = parse_task(
            "n:1",
            &json!({"completed": true, "error": {"type": "index_not_found_exception", "reason": "no such index [x]"}}),
        );
        assert_eq!(
            failed.error.as_deref(),
            Some("index_not_found_exception: no such index [x]")
        );
        assert!(!failed.succeeded());
        let cancelled = parse_task(
            "n:1",
            &json!({"completed": true, "response": {"canceled": "by user request", "failures": []}}),
        );
        assert_eq!(
            cancelled.error.as_deref(),
            Some("cancelled: by user request")
        );
    }

    proptest! {
        #[test]
        fn every_nonblank_term_is_in_every_clause(terms in proptest::collection::vec("[ a-zA-Z]{0,8}", 0..20)) {
            let q = sensitive_terms_query(&terms).unwrap();
            let expected: BTreeSet<String> = terms.iter().map(|t| t.trim().to_lowercase()).filter(|t| !t.is_empty()).collect();
            if expected.is_empty() {
                prop_assert_eq!(q, json!({"match_all": {}}));
            } else {
                for (i, field) in SENSITIVE_FIELDS.iter().enumerate() {
                    let got: BTreeSet<String> = serde_json::from_value(q["bool"]["must_not"][i]["terms"][*field].clone()).unwrap();
                    prop_assert_eq!(&got, &expected);
                }
            }
        }
    }
}
