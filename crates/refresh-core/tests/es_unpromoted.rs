//! Cleanup's index part (`es::delete_unaliased`) against a real Elasticsearch (`ES_URL`):
//! unpromoted indices go, an index with an alias stays, and a second run is a no-op without
//! error.

use refresh_core::error::ErrorKind;
use refresh_core::es::delete_unaliased;
use refresh_core::es::SearchClient;
use refresh_core::media::MediaType;

async fn exists(http: &reqwest::Client, es: &str, index: &str) -> bool {
    http.head(format!("{es}/{index}"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success()
}

#[tokio::test]
async fn unaliased_indices_are_deleted_once_and_aliased_ones_never() {
    let es = testkit::es_url();
    let http = reqwest::Client::new();
    let client = SearchClient::new(&es).unwrap();
    let suffix = testkit::unique_name("cleanup").replace('_', "-");
    let new_index = format!("image-{suffix}");
    let new_filtered = format!("image-{suffix}-filtered");
    for index in [&new_index, &new_filtered] {
        let r = http.put(format!("{es}/{index}")).send().await.unwrap();
        assert!(
            r.status().is_success(),
            "create {index}: {}",
            r.text().await.unwrap()
        );
    }

    // An index some alias points at (not a media alias: the test must not touch those).
    let alias = format!("image-{suffix}-alias");
    let r = http
        .post(format!("{es}/_aliases"))
        .json(&serde_json::json!({"actions": [{"add": {"index": new_filtered, "alias": alias}}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let err = delete_unaliased(
        &client,
        MediaType::Image,
        &[new_index.clone(), new_filtered.clone()],
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState, "{}", err.message);
    assert!(
        exists(&http, &es, &new_index).await,
        "refused cleanup deleted nothing"
    );
    assert!(exists(&http, &es, &new_filtered).await);

    // Without the alias both go; a second run finds them gone and succeeds.
    let r = http
        .delete(format!("{es}/{new_filtered}/_alias/{alias}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let candidates = [new_index.clone(), new_filtered.clone()];
    let removed = delete_unaliased(&client, MediaType::Image, &candidates)
        .await
        .unwrap();
    assert_eq!(removed.deleted, candidates.to_vec());
    assert!(removed.kept.is_empty() && removed.cancelled_tasks.is_empty());
    assert!(!exists(&http, &es, &new_index).await);
    assert!(!exists(&http, &es, &new_filtered).await);
    let removed = delete_unaliased(&client, MediaType::Image, &candidates)
        .await
        .unwrap();
    assert!(removed.deleted.is_empty() && removed.kept.is_empty());
}
