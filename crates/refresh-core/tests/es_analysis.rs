//! The bundled analysis against a real Elasticsearch, through the queries the search API sends:
//! `custom_english` lower-cases before its stemmer overrides (so "Animals" and `animals` meet),
//! and `title`, `description` and `tags.name` have an unstemmed `exact` sub-field for quoted
//! searches.

mod es_support;

use elasticsearch::http::Method;
use es_support::*;
use refresh_core::es::{create_index, SearchClient};
use refresh_core::media::MediaType;
use serde_json::{json, Value};

/// Tokens of `text` through `how` (`{"analyzer": …}` or `{"field": …}`) on `index`.
async fn analyze(client: &SearchClient, index: &str, how: Value, text: &str) -> Vec<String> {
    let mut body = how;
    body["text"] = json!(text);
    let (status, body) = raw(
        client,
        Method::Post,
        &format!("/{index}/_analyze"),
        Some(&body),
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

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn capitalised_words_reach_the_overrides() {
    let client = client();
    for media in MediaType::ALL {
        let index = unique(&format!("case-{media}"));
        create_index(&client, media, &index, 1).await.unwrap();
        let by_analyzer = json!({"analyzer": "custom_english"});
        for text in ["Animals", "animals", "ANIMALS", "Animal", "animal"] {
            assert_eq!(
                analyze(&client, &index, by_analyzer.clone(), text).await,
                strings(&["animal"]),
                "{media}: {text}"
            );
        }
        // The overrides still hold, whatever the case.
        for (text, token) in [
            ("anime", "anime"),
            ("Anime", "anime"),
            ("universe", "universe"),
            ("UNIVERSE", "universe"),
            ("animated", "animate"),
            ("Animated", "animate"),
            ("animate", "animate"),
        ] {
            assert_eq!(
                analyze(&client, &index, by_analyzer.clone(), text).await,
                strings(&[token]),
                "{media}: {text}"
            );
        }
        // The fields use it: the title, the description and the tags.
        for field in ["title", "description", "tags.name"] {
            assert_eq!(
                analyze(
                    &client,
                    &index,
                    json!({"field": field}),
                    "The Animals' Universe"
                )
                .await,
                strings(&["animal", "universe"]),
                "{media}: {field}"
            );
        }

        let titles = [
            ("1", "Animals"),
            ("2", "animals"),
            ("3", "ANIMALS"),
            ("4", "Wild Animal"),
            ("5", "Anime"),
            ("6", "Animated universe"),
            ("7", "Animation"),
        ];
        let docs: Vec<(String, Value)> = titles
            .iter()
            .map(|(id, title)| {
                (
                    id.to_string(),
                    json!({"id": id.parse::<i64>().unwrap(), "title": title,
                           "description": title, "tags": [{"name": title, "accuracy": null}]}),
                )
            })
            .collect();
        index_docs(&client, &index, &docs).await;
        for field in ["title", "description", "tags.name"] {
            for query in ["animals", "Animals", "ANIMALS", "animal"] {
                assert_eq!(
                    search_ids(&client, &index, json!({"match": {field: query}})).await,
                    strings(&["1", "2", "3", "4"]),
                    "{media}: {field} {query}"
                );
            }
            assert_eq!(
                search_ids(&client, &index, json!({"match": {field: "anime"}})).await,
                strings(&["5"]),
                "{media}: {field} anime is not animated"
            );
            assert_eq!(
                search_ids(&client, &index, json!({"match": {field: "animate"}})).await,
                strings(&["6"]),
                "{media}: {field} animate"
            );
            assert_eq!(
                search_ids(&client, &index, json!({"match": {field: "Universe"}})).await,
                strings(&["6"]),
                "{media}: {field} universe"
            );
        }
        cleanup(&client, &[&index]).await;
    }
}

#[tokio::test]
async fn quoted_searches_match_exact_words_only() {
    let client = client();
    for media in MediaType::ALL {
        let index = unique(&format!("exact-{media}"));
        create_index(&client, media, &index, 1).await.unwrap();
        let exact = json!({"analyzer": "exact"});
        assert_eq!(
            analyze(&client, &index, exact, "Running DOGS, the Animals'").await,
            strings(&["running", "dogs", "the", "animals"]),
            "{media}: standard tokenizer + lowercase, no stemming, no stop words"
        );
        for field in ["title.exact", "description.exact", "tags.name.exact"] {
            assert_eq!(
                analyze(&client, &index, json!({"field": field}), "Running dogs").await,
                strings(&["running", "dogs"]),
                "{media}: {field}"
            );
        }

        let texts = [
            ("1", "Running dogs"),
            ("2", "dogs run"),
            ("3", "A running dog"),
        ];
        let docs: Vec<(String, Value)> = texts
            .iter()
            .map(|(id, text)| {
                (
                    id.to_string(),
                    json!({"id": id.parse::<i64>().unwrap(), "title": text, "description": text,
                           "tags": [{"name": text, "accuracy": 0.95}]}),
                )
            })
            .collect();
        index_docs(&client, &index, &docs).await;

        for field in ["title", "description", "tags.name"] {
            let exact_field = format!("{field}.exact");
            // The exact words, in order: only "Running dogs" (the case does not matter).
            for phrase in ["running dogs", "Running Dogs"] {
                assert_eq!(
                    search_ids(
                        &client,
                        &index,
                        json!({"match_phrase": {&exact_field: phrase}})
                    )
                    .await,
                    strings(&["1"]),
                    "{media}: {exact_field} \"{phrase}\""
                );
            }
            // No stemming: "running dog" is not "running dogs" there…
            assert_eq!(
                search_ids(
                    &client,
                    &index,
                    json!({"match_phrase": {&exact_field: "running dog"}})
                )
                .await,
                strings(&["3"]),
                "{media}: {exact_field}"
            );
            // …while the stemmed field matches every form of the words.
            assert_eq!(
                search_ids(
                    &client,
                    &index,
                    json!({"match": {field: {"query": "running dogs", "operator": "and"}}})
                )
                .await,
                strings(&["1", "2", "3"]),
                "{media}: {field}"
            );
        }

        // The search API's quoted search: `quote_field_suffix` sends the quoted part to `.exact`.
        let quoted = |query: &str| {
            json!({"simple_query_string": {
                "query": query,
                "fields": ["title", "description", "tags.name"],
                "quote_field_suffix": ".exact",
                "default_operator": "AND"
            }})
        };
        assert_eq!(
            search_ids(&client, &index, quoted("\"running dogs\"")).await,
            strings(&["1"]),
            "{media}: quoted"
        );
        assert_eq!(
            search_ids(&client, &index, quoted("running dogs")).await,
            strings(&["1", "2", "3"]),
            "{media}: unquoted"
        );
        cleanup(&client, &[&index]).await;
    }
}
