//! Index creation, analysis, document acceptance and finishing against a real Elasticsearch.

mod es_support;

use elasticsearch::http::Method;
use es_support::*;
use refresh_core::document::{to_document, write_bulk_action, SourceRow};
use refresh_core::error::ErrorKind;
use refresh_core::es::{create_index, finish_index, index_health};
use refresh_core::media::MediaType;
use serde_json::{json, Value};

async fn analyze(index: &str, analyzer: &str, text: &str) -> Vec<String> {
    let client = client();
    let (status, body) = raw(
        &client,
        Method::Post,
        &format!("/{index}/_analyze"),
        Some(&json!({"analyzer": analyzer, "text": text})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn custom_english_stems_possessives_and_overrides() {
    let client = client();
    for media in MediaType::ALL {
        let index = unique(&format!("analyze-{media}"));
        let created = create_index(&client, media, &index, 1).await.unwrap();
        assert!(created.created);
        assert_eq!(
            analyze(&index, "custom_english", "The animals' running").await,
            vec!["animal", "run"]
        );
        // The overrides keep these from being stemmed into each other.
        assert_eq!(
            analyze(&index, "custom_english", "anime animated universe").await,
            vec!["anime", "animate", "universe"]
        );
        assert_eq!(
            analyze(&index, "custom_english", "the cat's toys").await,
            vec!["cat", "toi"]
        );
        cleanup(&client, &[&index]).await;
    }
}

#[tokio::test]
async fn create_then_finish_restores_serving_settings() {
    let client = client();
    let index = unique("finish");
    create_index(&client, MediaType::Image, &index, 2)
        .await
        .unwrap();
    let loading = index_settings(&client, &index).await;
    assert_eq!(loading["number_of_shards"], "2");
    assert_eq!(loading["number_of_replicas"], "0");
    assert_eq!(loading["refresh_interval"], "-1");
    let (_, mapping) = raw(&client, Method::Get, &format!("/{index}/_mapping"), None).await;
    assert_eq!(mapping[&index]["mappings"]["dynamic"], "false");
    assert_eq!(mapping[&index]["mappings"]["_meta"]["media_type"], "image");

    // Documents are not visible with refresh off…
    let docs: Vec<(String, Value)> = (1..=3)
        .map(|i| (i.to_string(), json!({"id": i, "title": "x"})))
        .collect();
    let mut body = Vec::new();
    for (id, doc) in &docs {
        body.extend_from_slice(format!("{{\"index\":{{\"_id\":\"{id}\"}}}}\n{doc}\n").as_bytes());
    }
    let response = client
        .bulk_ndjson(
            &index,
            body,
            &refresh_core::es::bulk::BulkOptions::default(),
        )
        .await
        .unwrap();
    assert!(response.status.is_success());
    let (_, count) = raw(&client, Method::Get, &format!("/{index}/_count"), None).await;
    assert_eq!(count["count"], 0);

    // …and are after finishing, with the serving settings in place and the health reported.
    let health = finish_index(&client, &index, 0, "2s").await.unwrap();
    assert_eq!(health.index, index);
    assert_eq!(health.status, "green");
    assert!(health.healthy && !health.timed_out);
    assert_eq!(health.active_primary_shards, 2);
    let serving = index_settings(&client, &index).await;
    assert_eq!(serving["number_of_replicas"], "0");
    assert_eq!(serving["refresh_interval"], "2s");
    let (_, count) = raw(&client, Method::Get, &format!("/{index}/_count"), None).await;
    assert_eq!(count["count"], 3);

    // One replica on a one-node cluster cannot be allocated: yellow, not healthy.
    let (status, _) = raw(
        &client,
        Method::Put,
        &format!("/{index}/_settings"),
        Some(&json!({"index": {"number_of_replicas": 1}})),
    )
    .await;
    assert_eq!(status, 200);
    let health = index_health(&client, &index, None).await.unwrap();
    assert_eq!(health.status, "yellow");
    assert!(!health.healthy);
    assert_eq!(health.unassigned_shards, 2);
    cleanup(&client, &[&index]).await;
}

#[tokio::test]
async fn create_is_idempotent_for_the_same_mappings_only() {
    let client = client();
    let index = unique("idempotent");
    assert!(
        create_index(&client, MediaType::Audio, &index, 1)
            .await
            .unwrap()
            .created
    );
    let again = create_index(&client, MediaType::Audio, &index, 1)
        .await
        .unwrap();
    assert!(!again.created);
    let err = create_index(&client, MediaType::Image, &index, 1)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState, "{}", err.message);
    assert!(err.message.contains("already exists"), "{}", err.message);
    cleanup(&client, &[&index]).await;
}

#[tokio::test]
async fn bad_names_and_missing_indices_are_clear_errors() {
    let client = client();
    let err = create_index(&client, MediaType::Image, "Image*", 1)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    let missing = unique("missing");
    let err = index_health(&client, &missing, None).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState);
    assert!(err.message.contains("does not exist"));
    let err = finish_index(&client, &missing, 0, "1s").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState);
    let (status, _) = raw(&client, Method::Head, &format!("/{missing}"), None).await;
    assert_eq!(status, 404, "a failed finish creates nothing");
}

fn edge_rows() -> Vec<SourceRow> {
    let base = SourceRow {
        identifier: "a5b3f3ad-8a0e-4d5e-9b4c-1f2e3d4c5b6a".into(),
        created_on: Some("2023-03-04T05:06:07.123456Z".parse().unwrap()),
        license: "BY-NC".into(),
        provider: Some("flickr".into()),
        source: Some("flickr".into()),
        title: Some("The animals' running".into()),
        url: Some("https://x.org/p/photo.JPG?x=1".into()),
        tags: Some(json!([{"name": "Dog", "accuracy": 0.99}, {"name": "grass"}])),
        width: Some(100),
        height: Some(200),
        duration: Some(45_000),
        filetype: Some("mp3".into()),
        alt_files: Some(json!([{"filetype": "ogg"}])),
        ..SourceRow::default()
    };
    let mut rows = Vec::new();
    // Values a rank_feature field would reject if they reached Elasticsearch.
    for (i, (popularity, boost)) in [
        (Some(0.0), Some(json!(0))),
        (Some(1e-45), Some(json!(1e-45))),
        (Some(-3.0), Some(json!(-7))),
        (Some(1e-39), Some(json!("1e-39"))),
        (Some(f64::NAN), Some(json!("NaN"))),
        (Some(f64::INFINITY), Some(json!(1e300))),
        (None, None),
        (Some(0.42), Some(json!(55))),
    ]
    .into_iter()
    .enumerate()
    {
        rows.push(SourceRow {
            id: i as i64 + 1,
            standardized_popularity: popularity,
            meta_authority_boost: boost,
            description: Some("ü".repeat(2500)),
            ..base.clone()
        });
    }
    rows
}

#[tokio::test]
async fn documents_from_the_model_index_without_item_errors() {
    let client = client();
    for media in MediaType::ALL {
        let index = unique(&format!("docs-{media}"));
        create_index(&client, media, &index, 1).await.unwrap();
        let rows = edge_rows();
        let mut body = Vec::new();
        for row in &rows {
            write_bulk_action(&to_document(media, row).unwrap(), &mut body).unwrap();
        }
        // `bulk` panics on any per-item error (the 200-with-errors case).
        bulk(&client, &index, body).await;
        assert_eq!(ids(&client, &index).await.len(), rows.len());

        // Stemmed search through custom_english finds the title; rank features score.
        let query = json!({"query": {"bool": {
            "must": {"match": {"title": "animal runs"}},
            "should": {"rank_feature": {"field": "standardized_popularity"}}
        }}});
        let (status, found) = raw(
            &client,
            Method::Post,
            &format!("/{index}/_search"),
            Some(&query),
        )
        .await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["hits"]["total"]["value"], rows.len());
        // Only rows 6 (∞ → 100) and 8 (42) carry a popularity; 100 ranks first.
        assert_eq!(found["hits"]["hits"][0]["_id"], "6");
        let (_, tagged) = raw(
            &client,
            Method::Post,
            &format!("/{index}/_count"),
            Some(&json!({"query": {"term": {"tags.name.keyword": "Dog"}}})),
        )
        .await;
        assert_eq!(tagged["count"], rows.len());
        let (_, lic) = raw(
            &client,
            Method::Post,
            &format!("/{index}/_count"),
            Some(&json!({"query": {"term": {"license": "by-nc"}}})),
        )
        .await;
        assert_eq!(lic["count"], rows.len());
        cleanup(&client, &[&index]).await;
    }
}

#[tokio::test]
async fn absent_values_index_as_explicit_nulls() {
    let client = client();
    for media in MediaType::ALL {
        let index = unique(&format!("nulls-{media}"));
        create_index(&client, media, &index, 1).await.unwrap();
        let mut body = Vec::new();
        // Every rank_feature field of the mapping explicitly null: accepted, as no value.
        body.extend_from_slice(b"{\"index\":{\"_id\":\"1\"}}\n");
        let nulls = json!({"id": 1, "standardized_popularity": null, "authority_boost": null,
                           "max_boost": null, "min_boost": null, "authority_penalty": null,
                           "provider": null, "created_on": null, "extension": null,
                           "tags": [{"name": "x", "accuracy": null}]});
        body.extend_from_slice(format!("{nulls}\n").as_bytes());
        // A bare row through the model: every key written, the absent ones null.
        let bare = SourceRow {
            id: 2,
            identifier: "6f1c7e0a-2d4b-4c8e-9a1f-3b5d7e9f1a2c".into(),
            license: "by".into(),
            ..SourceRow::default()
        };
        // A full row, its tag accuracy given as a numeric string.
        let full = SourceRow {
            id: 3,
            identifier: "7a2d8f1b-3e5c-4d9f-8b2a-4c6e8a0b2d3e".into(),
            license: "by".into(),
            provider: Some("flickr".into()),
            standardized_popularity: Some(0.5),
            tags: Some(json!([{"name": "cat", "accuracy": "0.95"}, {"name": "dog"}])),
            ..SourceRow::default()
        };
        for row in [&bare, &full] {
            write_bulk_action(&to_document(media, row).unwrap(), &mut body).unwrap();
        }
        // `bulk` panics on any per-item error.
        bulk(&client, &index, body).await;
        assert_eq!(ids(&client, &index).await, vec!["1", "2", "3"]);

        // The search API reads keys such as `provider` directly: they are there, null.
        let (status, doc) = raw(&client, Method::Get, &format!("/{index}/_doc/2"), None).await;
        assert_eq!(status, 200, "{doc}");
        let source = doc["_source"].as_object().unwrap();
        let mut keys: Vec<&str> = source.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected: Vec<&str> = refresh_core::document::document_fields(media).collect();
        expected.sort_unstable();
        assert_eq!(keys, expected, "{media}");
        for field in ["provider", "title", "standardized_popularity", "extension"] {
            assert_eq!(source[field], Value::Null, "{media}: {field}");
        }

        // A null is no value: only the document that has one matches.
        assert_eq!(
            search_ids(&client, &index, json!({"exists": {"field": "provider"}})).await,
            vec!["3"]
        );
        for field in ["standardized_popularity", "authority_boost"] {
            assert_eq!(
                search_ids(&client, &index, json!({"rank_feature": {"field": field}})).await,
                vec!["3"],
                "{media}: {field}"
            );
        }
        assert_eq!(
            search_ids(
                &client,
                &index,
                json!({"exists": {"field": "tags.accuracy"}})
            )
            .await,
            vec!["3"]
        );
        // "0.95" was indexed as the number 0.95.
        assert_eq!(
            search_ids(
                &client,
                &index,
                json!({"range": {"tags.accuracy": {"gte": 0.9}}})
            )
            .await,
            vec!["3"]
        );
        let (_, doc) = raw(&client, Method::Get, &format!("/{index}/_doc/3"), None).await;
        assert_eq!(
            doc["_source"]["tags"],
            json!([{"name": "cat", "accuracy": 0.95}, {"name": "dog", "accuracy": null}])
        );
        cleanup(&client, &[&index]).await;
    }
}
