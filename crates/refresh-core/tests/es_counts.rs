//! Document counts per source against a real Elasticsearch: every source, not a top 10.

mod es_support;

use elasticsearch::http::Method;
use es_support::*;
use refresh_core::es::{
    count_documents, count_documents_paged, create_index, promote_alias, DocumentCounts,
};
use refresh_core::media::MediaType;
use serde_json::json;
use std::collections::BTreeMap;

#[tokio::test]
async fn counts_cover_every_source() {
    let client = client();
    let index = unique("counts");
    create_index(&client, MediaType::Image, &index, 2)
        .await
        .unwrap();
    // 25 sources, source_k holding k + 1 documents.
    let mut docs = Vec::new();
    let mut expected = BTreeMap::new();
    let mut id = 0;
    for k in 0..25u64 {
        let source = format!("source_{k:02}");
        for _ in 0..=k {
            id += 1;
            docs.push((id.to_string(), json!({"id": id, "source": source})));
        }
        expected.insert(source, k + 1);
    }
    // A document without a source counts in the total only.
    docs.push(("9999".to_string(), json!({"id": 9999})));
    index_docs(&client, &index, &docs).await;
    let total = docs.len() as u64;

    let counts = count_documents(&client, &index).await.unwrap();
    assert_eq!(counts.total, total);
    assert_eq!(counts.by_source.len(), 25);
    assert_eq!(counts.by_source, expected);

    // Small pages walk the composite aggregation to the end.
    for page in [1, 4, 24, 25, 26] {
        let paged = count_documents_paged(&client, &index, page).await.unwrap();
        assert_eq!(paged, counts, "page size {page}");
    }

    // Through an alias.
    let alias = format!("{index}-alias");
    promote_alias(&client, &alias, &index).await.unwrap();
    assert_eq!(count_documents(&client, &alias).await.unwrap(), counts);
    let json = serde_json::to_value(&counts).unwrap();
    assert_eq!(json["total"], total);
    assert_eq!(json["by_source"]["source_24"], 25);
    cleanup(&client, &[&index]).await;
}

#[tokio::test]
async fn missing_alias_counts_zero() {
    let client = client();
    let counts = count_documents(&client, &unique("no-alias")).await.unwrap();
    assert_eq!(counts, DocumentCounts::default());
    assert_eq!(
        serde_json::to_value(&counts).unwrap(),
        json!({"total": 0, "by_source": {}})
    );
    let empty = unique("empty");
    create_index(&client, MediaType::Audio, &empty, 1)
        .await
        .unwrap();
    let (status, _) = raw(&client, Method::Post, &format!("/{empty}/_refresh"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        count_documents(&client, &empty).await.unwrap(),
        DocumentCounts::default()
    );
    cleanup(&client, &[&empty]).await;
}
