//! Shared helpers of the Elasticsearch integration tests (real cluster at `ES_URL`).
#![allow(dead_code)]

use elasticsearch::http::Method;
use refresh_core::es::bulk::BulkOptions;
use refresh_core::es::SearchClient;
use serde_json::Value;

pub fn es_url() -> String {
    std::env::var("ES_URL")
        .expect("ES_URL must be set to the test Elasticsearch URL (e.g. http://127.0.0.1:19209)")
}

pub fn client() -> SearchClient {
    SearchClient::new(&es_url()).unwrap()
}

/// A name no other test (or run) uses: `t-<what>-<random>`.
pub fn unique(what: &str) -> String {
    format!(
        "t-{what}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Sends a raw request and returns (status, body).
pub async fn raw(
    client: &SearchClient,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let response = client
        .call("test request", method, path, &[], body)
        .await
        .unwrap();
    (response.status.as_u16(), response.body)
}

/// Bulk-indexes pre-serialised NDJSON and refreshes; panics on any item error.
pub async fn bulk(client: &SearchClient, index: &str, ndjson: Vec<u8>) -> Value {
    let response = client
        .bulk_ndjson(index, ndjson, &BulkOptions::default())
        .await
        .unwrap();
    assert!(
        response.status.is_success(),
        "bulk status {}",
        response.status
    );
    let body: Value = response.json().unwrap();
    if body["errors"] == true {
        let errors: Vec<&Value> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|item| item["index"]["error"].is_object())
            .collect();
        panic!("bulk item errors: {errors:#?}");
    }
    let (status, refreshed) = raw(client, Method::Post, &format!("/{index}/_refresh"), None).await;
    assert_eq!(status, 200, "{refreshed}");
    body
}

/// Indexes JSON documents with the given ids.
pub async fn index_docs(client: &SearchClient, index: &str, docs: &[(String, Value)]) {
    let mut body = Vec::new();
    for (id, doc) in docs {
        body.extend_from_slice(
            serde_json::to_string(&serde_json::json!({"index": {"_id": id}}))
                .unwrap()
                .as_bytes(),
        );
        body.push(b'\n');
        body.extend_from_slice(serde_json::to_string(doc).unwrap().as_bytes());
        body.push(b'\n');
    }
    bulk(client, index, body).await;
}

/// Ids of every document in `index`, sorted.
pub async fn ids(client: &SearchClient, index: &str) -> Vec<String> {
    search_ids(client, index, serde_json::json!({"match_all": {}})).await
}

/// Ids of the documents `query` finds in `index` (at most 10 000), sorted.
pub async fn search_ids(client: &SearchClient, index: &str, query: Value) -> Vec<String> {
    let body = serde_json::json!({"size": 10000, "_source": false, "query": query});
    let (status, found) = raw(
        client,
        Method::Post,
        &format!("/{index}/_search"),
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    let mut ids: Vec<String> = found["hits"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Points `alias` at `index` too (the alias may already point elsewhere).
pub async fn add_alias(client: &SearchClient, index: &str, alias: &str) {
    let (status, body) = raw(
        client,
        Method::Post,
        "/_aliases",
        Some(&serde_json::json!({"actions": [{"add": {"index": index, "alias": alias}}]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Deletes test indices (ignoring missing ones).
pub async fn cleanup(client: &SearchClient, indices: &[&str]) {
    for index in indices {
        let _ = client
            .call(
                "test cleanup",
                Method::Delete,
                &format!("/{index}"),
                &[],
                None,
            )
            .await;
    }
}

/// Index settings as flat strings (`index.number_of_replicas` → "0").
pub async fn index_settings(client: &SearchClient, index: &str) -> Value {
    let (status, body) = raw(client, Method::Get, &format!("/{index}/_settings"), None).await;
    assert_eq!(status, 200, "{body}");
    body[index]["settings"]["index"].clone()
}
