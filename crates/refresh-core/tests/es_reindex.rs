//! The filtered reindex against a real Elasticsearch: documents with a sensitive term in
//! their tags, title or description stay out, every other document is copied.

mod es_support;

use es_support::*;
use refresh_core::error::ErrorKind;
use refresh_core::es::{
    cancel_reindex_into, create_index, finish_index, get_task, start_filtered_reindex,
    ReindexOptions, SearchClient, Slices, TaskStatus,
};
use refresh_core::media::MediaType;
use serde_json::json;
use std::time::Duration;

async fn wait_for_task(client: &SearchClient, task_id: &str) -> TaskStatus {
    for _ in 0..600 {
        let status = get_task(client, task_id).await.unwrap();
        if status.completed {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("task {task_id} did not complete");
}

#[tokio::test]
async fn filtered_reindex_leaves_out_sensitive_documents_only() {
    let client = client();
    let source = unique("filter-src");
    let dest = format!("{source}-filtered");
    create_index(&client, MediaType::Image, &source, 3)
        .await
        .unwrap();
    let docs = vec![
        (
            "1",
            json!({"id": 1, "title": "A quiet lake", "description": "calm water", "tags": [{"name": "lake"}]}),
        ),
        (
            "2",
            json!({"id": 2, "title": "Something Badword here", "tags": []}),
        ),
        (
            "3",
            json!({"id": 3, "title": "Fine", "description": "has an ugly-term inside", "tags": []}),
        ),
        (
            "4",
            json!({"id": 4, "title": "Fine too", "tags": [{"name": "tree"}, {"name": "BADWORD"}]}),
        ),
        // Stems and longer words that merely contain a term are not the term.
        (
            "5",
            json!({"id": 5, "title": "Badwords and badwording", "description": "uglyterm", "tags": [{"name": "badwordy"}]}),
        ),
        (
            "6",
            json!({"id": 6, "title": "Clean", "description": "nothing to see", "tags": [{"name": "sky", "accuracy": 0.95}]}),
        ),
        (
            "7",
            json!({"id": 7, "title": "Clean", "description": "the other term", "tags": [{"name": "x"}]}),
        ),
    ];
    let docs: Vec<(String, serde_json::Value)> = docs
        .into_iter()
        .map(|(id, d)| (id.to_string(), d))
        .collect();
    index_docs(&client, &source, &docs).await;
    finish_index(&client, &source, 0, "1s").await.unwrap();

    let terms = vec![
        "badword".to_string(),
        "UGLY".to_string(),
        "  term ".to_string(),
        "".to_string(),
    ];
    let options = ReindexOptions {
        requests_per_second: Some(20_000),
        slices: Slices::Auto,
    };
    let started = start_filtered_reindex(&client, &source, &dest, &terms, &options)
        .await
        .unwrap();
    assert_eq!(started.terms_count, 3);
    assert!(started.created_index);
    assert!(started.task_id.contains(':'));

    let status = wait_for_task(&client, &started.task_id).await;
    assert!(status.succeeded(), "{status:?}");
    assert_eq!(status.total, 3, "{status:?}");
    assert_eq!(status.created, 3, "{status:?}");
    assert_eq!(status.failures, 0);

    // The destination was made like the source: same shards and analysis, loading settings.
    let settings = index_settings(&client, &dest).await;
    assert_eq!(settings["number_of_shards"], "3");
    assert_eq!(settings["number_of_replicas"], "0");
    assert_eq!(settings["refresh_interval"], "-1");
    assert_eq!(
        settings["analysis"]["analyzer"]["custom_english"],
        index_settings(&client, &source).await["analysis"]["analyzer"]["custom_english"]
    );
    finish_index(&client, &dest, 0, "1s").await.unwrap();
    // "ugly-term" is tokenised to ugly + term (2 and 7 match "badword" / "term" too).
    assert_eq!(ids(&client, &dest).await, vec!["1", "5", "6"]);
    cleanup(&client, &[&source, &dest]).await;
}

#[tokio::test]
async fn retried_start_reuses_the_destination_and_copies_again() {
    let client = client();
    let source = unique("filter-retry");
    let dest = format!("{source}-filtered");
    create_index(&client, MediaType::Audio, &source, 1)
        .await
        .unwrap();
    let docs: Vec<(String, serde_json::Value)> = (1..=50)
        .map(|i| {
            (
                i.to_string(),
                json!({"id": i, "title": if i % 10 == 0 { "nasty" } else { "ok" }}),
            )
        })
        .collect();
    index_docs(&client, &source, &docs).await;
    let terms = vec!["nasty".to_string()];
    let options = ReindexOptions {
        requests_per_second: None,
        slices: Slices::Count(2),
    };
    let first = start_filtered_reindex(&client, &source, &dest, &terms, &options)
        .await
        .unwrap();
    assert!(wait_for_task(&client, &first.task_id).await.succeeded());
    let second = start_filtered_reindex(&client, &source, &dest, &terms, &options)
        .await
        .unwrap();
    assert!(!second.created_index);
    let status = wait_for_task(&client, &second.task_id).await;
    assert!(status.succeeded());
    assert_eq!((status.total, status.created, status.updated), (45, 0, 45));
    finish_index(&client, &dest, 0, "1s").await.unwrap();
    assert_eq!(ids(&client, &dest).await.len(), 45);
    cleanup(&client, &[&source, &dest]).await;
}

#[tokio::test]
async fn bad_reindex_requests_change_nothing() {
    let client = client();
    let missing = unique("no-such-source");
    let dest = format!("{missing}-filtered");
    let err = start_filtered_reindex(&client, &missing, &dest, &[], &ReindexOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState, "{}", err.message);
    let (status, _) = raw(
        &client,
        elasticsearch::http::Method::Head,
        &format!("/{dest}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let err = start_filtered_reindex(&client, "a", "a", &[], &ReindexOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);

    let err = get_task(&client, "oTUltX4IQMOUUVeiohTt8A:999999999")
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState, "{}", err.message);
    let err = get_task(&client, "../_cluster:1").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
}

#[tokio::test]
async fn cancel_stops_a_running_reindex_into_the_named_index_only() {
    let client = client();
    let source = unique("cancel-src");
    let dest = format!("{source}-filtered");
    let other = format!("{source}-other");
    create_index(&client, MediaType::Image, &source, 1)
        .await
        .unwrap();
    let docs: Vec<(String, serde_json::Value)> = (1..=3000)
        .map(|i| (i.to_string(), json!({"id": i, "title": "ok"})))
        .collect();
    index_docs(&client, &source, &docs).await;
    // 1 document/s after a first 1000-document batch per slice: both tasks run far longer than
    // this test.
    let crawl = ReindexOptions {
        requests_per_second: Some(1),
        slices: Slices::Count(2),
    };
    let doomed = start_filtered_reindex(&client, &source, &dest, &[], &crawl)
        .await
        .unwrap();
    let kept = start_filtered_reindex(&client, &source, &other, &[], &crawl)
        .await
        .unwrap();

    let cancelled = cancel_reindex_into(&client, std::slice::from_ref(&dest))
        .await
        .unwrap();
    assert_eq!(cancelled, vec![doomed.task_id.clone()]);
    let status = wait_for_task(&client, &doomed.task_id).await;
    assert!(
        status.error.as_deref().unwrap_or("").contains("cancel"),
        "{status:?}"
    );
    assert!(!get_task(&client, &kept.task_id).await.unwrap().completed);

    // Nothing left to cancel: a second call finds no task.
    assert!(cancel_reindex_into(&client, std::slice::from_ref(&dest))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        cancel_reindex_into(&client, std::slice::from_ref(&other))
            .await
            .unwrap(),
        vec![kept.task_id.clone()]
    );
    // A name that could address several indices is refused before any call.
    let err = cancel_reindex_into(&client, &["Bad*".to_string()])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{}", err.message);
    assert!(
        err.message
            .starts_with("\"Bad*\" is not a valid index or alias name"),
        "{}",
        err.message
    );
    cleanup(&client, &[&source, &dest, &other]).await;
}
