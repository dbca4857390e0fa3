//! The filtered index written in the reindex's one pass (dual write) is verified, not
//! trusted: a mismatch put into it by hand after the reindex, before the gate, is caught
//! before promotion — a sensitive document is deleted, a missing clean one makes the run
//! rebuild the filtered index with the `_reindex` path. Either way what goes live is exact.

use anyhow::{Context, Result};
use e2e::{
    exclusive, execution_history_with_data, load_sample_data, sensitive_query, MediaType,
    PatchedDefinition, Stack,
};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// A Wait the test puts between the reindex and the gate: the moment to edit the index.
const HOLD_STATE: &str = "Hold for the test";

/// What the test does to the new filtered index while the run holds before the gate.
enum HandEdit {
    /// A sensitive document of the main index written into the filtered index.
    AddSensitive,
    /// A clean document deleted from the filtered index.
    RemoveClean,
}

struct Edited {
    finished: e2e::Finished,
    /// The gate's answer (`$.filtered_verification`).
    verification: Value,
    /// The identifier of the document the test added or removed.
    identifier: String,
    states: Vec<String>,
}

async fn run_with(stack: &Stack, name: &str, edit: HandEdit) -> Result<Edited> {
    let media = MediaType::Audio;
    // A suffix of its own: the last run's index with the same name is live.
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let suffix = &format!("{name}-{started}");
    let main = format!("{media}-{suffix}");
    let filtered = format!("{main}-filtered");
    let _hold = PatchedDefinition::apply(&stack.refresh_arn, |definition| {
        let states = &mut definition["States"];
        states["Filtered index written by the workers?"]["Choices"][0]["Next"] = json!(HOLD_STATE);
        states[HOLD_STATE] =
            json!({"Type": "Wait", "Seconds": 20, "Next": "Verify filtered index"});
    })?;
    let arn = stack
        .start(
            &stack.refresh_arn,
            &format!("e2e-{name}"),
            json!({"media_type": "audio", "environment": "staging", "index_suffix": suffix}),
        )
        .await?;
    stack
        .wait_for_state(&arn, HOLD_STATE, Duration::from_secs(400))
        .await?;

    let one = |index: &str, query: Value| {
        let index = index.to_string();
        async move {
            stack
                .es(
                    reqwest::Method::POST,
                    &format!("{index}/_search"),
                    Some(json!({"size": 1, "query": query})),
                )
                .await
                .map(|(_, body)| body["hits"]["hits"][0].clone())
        }
    };
    let refreshed = |index: &str| format!("{index}/_refresh");
    stack
        .es(reqwest::Method::POST, &refreshed(&main), None)
        .await?;
    stack
        .es(reqwest::Method::POST, &refreshed(&filtered), None)
        .await?;
    let hit = match edit {
        HandEdit::AddSensitive => one(&main, sensitive_query()).await?,
        HandEdit::RemoveClean => one(&filtered, json!({"match_all": {}})).await?,
    };
    let id = hit["_id"]
        .as_str()
        .context("no document to edit")?
        .to_string();
    let identifier = hit["_source"]["identifier"]
        .as_str()
        .context("a document without identifier")?
        .to_string();
    let (status, body) = match edit {
        HandEdit::AddSensitive => {
            stack
                .es(
                    reqwest::Method::PUT,
                    &format!("{filtered}/_doc/{id}?refresh=true"),
                    Some(hit["_source"].clone()),
                )
                .await?
        }
        HandEdit::RemoveClean => {
            stack
                .es(
                    reqwest::Method::DELETE,
                    &format!("{filtered}/_doc/{id}?refresh=true"),
                    None,
                )
                .await?
        }
    };
    anyhow::ensure!(
        (200..300).contains(&status),
        "editing {filtered}: {status} {body}"
    );
    let still_holding = stack.state_names(&arn).await?;
    anyhow::ensure!(
        !still_holding.iter().any(|s| s == "Verify filtered index"),
        "the gate ran before the edit was made"
    );

    let finished = stack.wait(&arn, RUN_TIMEOUT).await?;
    Ok(Edited {
        verification: verification_of(&finished.arn)?,
        states: stack.state_names(&finished.arn).await?,
        finished,
        identifier,
    })
}

/// `$.filtered_verification` as the run left *Verify filtered index*.
fn verification_of(arn: &str) -> Result<Value> {
    execution_history_with_data(arn)?
        .iter()
        .filter(|event| event["stateExitedEventDetails"]["name"] == "Verify filtered index")
        .find_map(|event| event["stateExitedEventDetails"]["output"].as_str())
        .context("the run never left Verify filtered index")
        .and_then(|output| {
            let state: Value = serde_json::from_str(output)?;
            Ok(state["filtered_verification"].clone())
        })
}

/// The live filtered index is the live index less its sensitive documents, by identifier.
async fn assert_live_filtered_exact(stack: &Stack) -> Result<BTreeSet<String>> {
    let media = MediaType::Audio;
    let live = stack.identifiers(media.alias()).await?;
    let filtered = stack.identifiers(media.filtered_alias()).await?;
    let sensitive_count = stack.count(media.alias(), sensitive_query()).await?;
    assert!(sensitive_count > 0, "the sample has sensitive documents");
    assert_eq!(
        stack
            .count(media.filtered_alias(), sensitive_query())
            .await?,
        0,
        "a sensitive document went live in the filtered index"
    );
    assert_eq!(
        filtered.len() as u64,
        live.len() as u64 - sensitive_count,
        "live filtered documents"
    );
    assert!(filtered.is_subset(&live));
    Ok(filtered)
}

#[tokio::test]
async fn a_sensitive_document_put_into_the_filtered_index_is_deleted_before_promotion() -> Result<()>
{
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    let edited = run_with(&stack, "gate-sensitive", HandEdit::AddSensitive).await?;
    let verification = &edited.verification;
    e2e::record(
        "promotion",
        "a sensitive document written by hand into the new filtered index between the dual-write reindex and the gate",
        &format!(
            "the gate deleted {} document(s) (outcome {}); run {}",
            verification["deleted"],
            verification["outcome"].as_str().unwrap_or("?"),
            edited.finished.status.to_lowercase()
        ),
        if edited.finished.status == "SUCCEEDED" {
            let live = stack.identifiers(MediaType::Audio.filtered_alias()).await?;
            if live.contains(&edited.identifier) {
                "the sensitive document went live".to_string()
            } else {
                "nothing".to_string()
            }
        } else {
            "the run failed".to_string()
        },
        "dual_write::a_sensitive_document_put_into_the_filtered_index_is_deleted_before_promotion",
    );
    assert_eq!(
        edited.finished.status, "SUCCEEDED",
        "{:?} {:?}",
        edited.finished.error, edited.finished.cause
    );
    assert_eq!(verification["outcome"], "repaired", "{verification}");
    assert_eq!(verification["deleted"], 1, "{verification}");
    assert!(
        !edited
            .states
            .iter()
            .any(|s| s == "Delete unverified filtered index"),
        "a repaired index needs no rebuild: {:?}",
        edited.states
    );
    let filtered = assert_live_filtered_exact(&stack).await?;
    assert!(!filtered.contains(&edited.identifier));
    Ok(())
}

#[tokio::test]
async fn a_clean_document_missing_from_the_filtered_index_makes_the_run_rebuild_it() -> Result<()> {
    let _guard = exclusive().await;
    let stack = Stack::connect().await;
    load_sample_data()?;
    let edited = run_with(&stack, "gate-missing", HandEdit::RemoveClean).await?;
    let verification = &edited.verification;
    let rebuilt = edited
        .states
        .iter()
        .any(|s| s == "Delete unverified filtered index")
        && edited.states.iter().any(|s| s == "Start filtered reindex");
    e2e::record(
        "promotion",
        "a clean document deleted by hand from the new filtered index between the dual-write reindex and the gate",
        &format!(
            "the gate found the count short (outcome {}); {}run {}",
            verification["outcome"].as_str().unwrap_or("?"),
            if rebuilt { "the filtered index was rebuilt by _reindex; " } else { "" },
            edited.finished.status.to_lowercase()
        ),
        if edited.finished.status == "SUCCEEDED" {
            let live = stack.identifiers(MediaType::Audio.filtered_alias()).await?;
            if live.contains(&edited.identifier) {
                "nothing".to_string()
            } else {
                "1 clean document missing from the live filtered index".to_string()
            }
        } else {
            "the run failed".to_string()
        },
        "dual_write::a_clean_document_missing_from_the_filtered_index_makes_the_run_rebuild_it",
    );
    assert_eq!(
        edited.finished.status, "SUCCEEDED",
        "{:?} {:?}",
        edited.finished.error, edited.finished.cause
    );
    assert_eq!(verification["outcome"], "rebuild", "{verification}");
    assert_eq!(
        verification["filtered_count"].as_u64().map(|n| n + 1),
        verification["expected"].as_u64(),
        "{verification}"
    );
    assert!(rebuilt, "{:?}", edited.states);
    let filtered = assert_live_filtered_exact(&stack).await?;
    assert!(filtered.contains(&edited.identifier));
    Ok(())
}
