//! The filtered index's verification gate against a real Elasticsearch: a clean filtered
//! index is verified, a sensitive document written into it is found and deleted, a missing
//! clean document asks for a rebuild.

mod es_support;

use es_support::*;
use refresh_core::es::{create_index, verify_filtered, FilteredVerification, VerifyOptions};
use refresh_core::media::MediaType;
use serde_json::{json, Value};

fn terms() -> Vec<String> {
    vec!["badword".into(), "Ugly".into()]
}

fn docs() -> Vec<(String, Value)> {
    [
        (
            1,
            json!({"title": "A quiet lake", "tags": [{"name": "lake"}]}),
        ),
        (2, json!({"title": "Something BADWORD here", "tags": []})),
        (
            3,
            json!({"title": "Fine", "description": "so ugly.", "tags": []}),
        ),
        (
            4,
            json!({"title": "Fine too", "tags": [{"name": "badword"}]}),
        ),
        (5, json!({"title": "Badwords and ugliness", "tags": []})),
        (6, json!({"title": "Clean", "tags": [{"name": "sky"}]})),
    ]
    .into_iter()
    .map(|(id, mut doc)| {
        doc["id"] = json!(id);
        (id.to_string(), doc)
    })
    .collect()
}

fn clean(docs: &[(String, Value)]) -> Vec<(String, Value)> {
    docs.iter()
        .filter(|(id, _)| !["2", "3", "4"].contains(&id.as_str()))
        .cloned()
        .collect()
}

/// A main index with [`docs`] and a filtered index with `filtered_docs`.
async fn pair(what: &str, filtered_docs: &[(String, Value)]) -> (String, String) {
    let client = client();
    let main = unique(what);
    let filtered = format!("{main}-filtered");
    create_index(&client, MediaType::Image, &main, 2)
        .await
        .unwrap();
    create_index(&client, MediaType::Image, &filtered, 2)
        .await
        .unwrap();
    index_docs(&client, &main, &docs()).await;
    if !filtered_docs.is_empty() {
        index_docs(&client, &filtered, filtered_docs).await;
    }
    (main, filtered)
}

#[tokio::test]
async fn a_clean_filtered_index_is_verified() {
    let client = client();
    let (main, filtered) = pair("verify-clean", &clean(&docs())).await;
    let outcome = verify_filtered(
        &client,
        &main,
        &filtered,
        &terms(),
        &VerifyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        outcome,
        FilteredVerification::Verified {
            main_count: 6,
            sensitive_in_main: 3,
            filtered_count: 3,
        }
    );
    assert!(outcome.is_ok());
    cleanup(&client, &[&main, &filtered]).await;
}

#[tokio::test]
async fn a_sensitive_document_in_the_filtered_index_is_deleted() {
    let client = client();
    let mut written = clean(&docs());
    // The matcher's false negative: document 4 got into the filtered index.
    written.push(docs()[3].clone());
    let (main, filtered) = pair("verify-repair", &written).await;
    let outcome = verify_filtered(
        &client,
        &main,
        &filtered,
        &terms(),
        &VerifyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        outcome,
        FilteredVerification::Repaired {
            main_count: 6,
            sensitive_in_main: 3,
            filtered_count: 3,
            deleted: 1,
        }
    );
    assert_eq!(ids(&client, &filtered).await, vec!["1", "5", "6"]);
    assert_eq!(
        serde_json::to_value(&outcome).unwrap()["outcome"],
        "repaired"
    );

    // With a deletion limit below what it finds, the gate deletes nothing and asks for a
    // rebuild.
    index_docs(&client, &filtered, &docs()[1..3]).await;
    let outcome = verify_filtered(
        &client,
        &main,
        &filtered,
        &terms(),
        &VerifyOptions { max_deletions: 1 },
    )
    .await
    .unwrap();
    match outcome {
        FilteredVerification::Rebuild {
            sensitive_in_filtered: 2,
            deleted: 0,
            ..
        } => {}
        other => panic!("expected a rebuild without deletions, got {other:?}"),
    }
    assert_eq!(ids(&client, &filtered).await, vec!["1", "2", "3", "5", "6"]);
    cleanup(&client, &[&main, &filtered]).await;
}

#[tokio::test]
async fn a_missing_clean_document_asks_for_a_rebuild() {
    let client = client();
    let mut written = clean(&docs());
    written.retain(|(id, _)| id != "5");
    // And a sensitive one to delete on the way: the rebuild is still needed.
    written.push(docs()[1].clone());
    let (main, filtered) = pair("verify-missing", &written).await;
    let outcome = verify_filtered(
        &client,
        &main,
        &filtered,
        &terms(),
        &VerifyOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        outcome,
        FilteredVerification::Rebuild {
            main_count: 6,
            sensitive_in_main: 3,
            expected: 3,
            filtered_count: 2,
            sensitive_in_filtered: 1,
            deleted: 1,
            reason: format!("1 clean documents of {main} are missing from {filtered}"),
        }
    );
    assert!(!outcome.is_ok());
    cleanup(&client, &[&main, &filtered]).await;
}

#[tokio::test]
async fn an_extra_document_asks_for_a_rebuild() {
    let client = client();
    let mut written = clean(&docs());
    written.push((
        "99".into(),
        json!({"id": 99, "title": "not in the main index"}),
    ));
    let (main, filtered) = pair("verify-extra", &written).await;
    let outcome = verify_filtered(
        &client,
        &main,
        &filtered,
        &terms(),
        &VerifyOptions::default(),
    )
    .await
    .unwrap();
    match &outcome {
        FilteredVerification::Rebuild {
            expected: 3,
            filtered_count: 4,
            reason,
            ..
        } => assert!(reason.contains("1 documents more"), "{reason}"),
        other => panic!("expected a rebuild, got {other:?}"),
    }
    cleanup(&client, &[&main, &filtered]).await;
}

#[tokio::test]
async fn a_missing_index_is_an_error() {
    let client = client();
    let (main, filtered) = pair("verify-gone", &clean(&docs())).await;
    cleanup(&client, &[&filtered]).await;
    assert!(verify_filtered(
        &client,
        &main,
        &filtered,
        &terms(),
        &VerifyOptions::default()
    )
    .await
    .is_err());
    cleanup(&client, &[&main]).await;
}
