//! What surrounds the point of no return, against a real Elasticsearch: both aliases in one
//! `_aliases` call, the pre-flight before the table is promoted, and the search guard.

mod es_support;

use elasticsearch::http::Method;
use es_support::*;
use refresh_core::error::ErrorKind;
use refresh_core::es::{
    check_search_guard, create_index, indices_of_alias, promote_aliases, promotion_preflight,
    SearchClient,
};
use refresh_core::guard::SearchGuardConfig;
use refresh_core::media::MediaType;
use serde_json::{json, Value};

async fn new_index(client: &SearchClient, name: &str) {
    create_index(client, MediaType::Image, name, 1)
        .await
        .unwrap();
}

async fn set_block(client: &SearchClient, index: &str, block: &str, on: bool) {
    let (status, body) = raw(
        client,
        Method::Put,
        &format!("/{index}/_settings"),
        Some(&json!({ format!("index.blocks.{block}"): on })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// Live pair behind `<alias>` / `<alias>-filtered`, and a new pair: `(live, live_f, new, new_f)`.
async fn two_pairs(client: &SearchClient, alias: &str) -> [String; 4] {
    let names = [
        format!("{alias}-live"),
        format!("{alias}-live-filtered"),
        format!("{alias}-new"),
        format!("{alias}-new-filtered"),
    ];
    for name in &names {
        new_index(client, name).await;
    }
    add_alias(client, &names[0], alias).await;
    add_alias(client, &names[1], &format!("{alias}-filtered")).await;
    names
}

#[tokio::test]
async fn both_aliases_move_in_one_call_or_not_at_all() {
    let client = client();
    let alias = unique("pair");
    let filtered_alias = format!("{alias}-filtered");
    let [live, live_f, new, new_f] = two_pairs(&client, &alias).await;

    let promoted = promote_aliases(&client, &[(&alias, &new), (&filtered_alias, &new_f)])
        .await
        .unwrap();
    assert_eq!(
        promoted.previous_indices,
        vec![live.clone(), live_f.clone()]
    );
    assert_eq!(
        indices_of_alias(&client, &alias).await.unwrap(),
        vec![new.clone()]
    );
    assert_eq!(
        indices_of_alias(&client, &filtered_alias).await.unwrap(),
        vec![new_f.clone()]
    );

    // Again (a retry after a lost reply): nothing left to move, nothing changes.
    let again = promote_aliases(&client, &[(&alias, &new), (&filtered_alias, &new_f)])
        .await
        .unwrap();
    assert!(again.previous_indices.is_empty());
    assert_eq!(
        indices_of_alias(&client, &alias).await.unwrap(),
        vec![new.clone()]
    );

    // A block on one index refuses the whole call: the other alias stays too.
    set_block(&client, &live_f, "read_only", true).await;
    let err = promote_aliases(&client, &[(&alias, &live), (&filtered_alias, &live_f)])
        .await
        .unwrap_err();
    assert!(err.message.contains(&alias), "{}", err.message);
    assert_eq!(
        indices_of_alias(&client, &alias).await.unwrap(),
        vec![new.clone()]
    );
    assert_eq!(
        indices_of_alias(&client, &filtered_alias).await.unwrap(),
        vec![new_f.clone()]
    );
    set_block(&client, &live_f, "read_only", false).await;

    // An alias on two indices needs an operator: refused before anything is sent.
    add_alias(&client, &live, &alias).await;
    let err = promote_aliases(&client, &[(&filtered_alias, &live_f), (&alias, &new)])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState);
    assert!(
        err.message.contains("points at 2 indices"),
        "{}",
        err.message
    );
    assert_eq!(
        indices_of_alias(&client, &filtered_alias).await.unwrap(),
        vec![new_f.clone()]
    );

    let err = promote_aliases(&client, &[(&alias, &new), (&alias, &live)])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    cleanup(&client, &[&live, &live_f, &new, &new_f]).await;
}

#[tokio::test]
async fn the_preflight_names_every_reason_the_aliases_could_not_move() {
    let client = client();
    let alias = unique("preflight");
    let filtered_alias = format!("{alias}-filtered");
    let [live, live_f, new, new_f] = two_pairs(&client, &alias).await;
    let aliases = [alias.as_str(), filtered_alias.as_str()];

    let report = promotion_preflight(&client, aliases, &new, &new_f)
        .await
        .unwrap();
    assert_eq!(report.indices.get(&new).map(String::as_str), Some("green"));
    assert_eq!(report.aliases.get(&alias), Some(&Some(live.clone())));
    assert!(!report.disks.is_empty(), "{report:?}");

    // A block on the live filtered index (a flood-stage watermark sets this one).
    set_block(&client, &live_f, "read_only_allow_delete", true).await;
    let err = promotion_preflight(&client, aliases, &new, &new_f)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::PromotionNotReady);
    assert!(
        err.message.contains(&format!(
            "index {live_f} has index.blocks.read_only_allow_delete"
        )),
        "{}",
        err.message
    );
    set_block(&client, &live_f, "read_only_allow_delete", false).await;

    // A missing new index and an alias on two indices, both named in one error.
    add_alias(&client, &new, &alias).await;
    let missing = format!("{alias}-gone-filtered");
    let err = promotion_preflight(&client, aliases, &new, &missing)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::PromotionNotReady);
    for expected in [
        format!("index {missing} does not exist"),
        format!("index {new} is already behind alias {alias}"),
        format!("alias {alias} points at 2 indices"),
    ] {
        assert!(
            err.message.contains(&expected),
            "{expected}: {}",
            err.message
        );
    }
    // The pre-flight changes nothing.
    assert_eq!(
        indices_of_alias(&client, &alias).await.unwrap(),
        vec![live.clone(), new.clone()]
    );
    cleanup(&client, &[&live, &live_f, &new, &new_f]).await;
}

fn doc(id: u64, title: Option<&str>, source: &str) -> (String, Value) {
    (
        id.to_string(),
        json!({"id": id, "identifier": format!("id-{id}"), "title": title,
               "description": "a picture", "source": source, "license": "cc0",
               "tags": [{"name": "dance"}]}),
    )
}

#[tokio::test]
async fn the_search_guard_refuses_an_index_whose_titles_were_emptied_naming_the_query() {
    let client = client();
    let alias = unique("guard");
    let live = format!("{alias}-live");
    let new = format!("{alias}-new");
    new_index(&client, &live).await;
    new_index(&client, &new).await;
    add_alias(&client, &live, &alias).await;
    let titles = [
        "Sunset over the forest",
        "sunset",
        "SUNSET at sea",
        "A forest path",
    ];
    let live_docs: Vec<_> = (0..40u64)
        .map(|i| doc(i, Some(titles[i as usize % titles.len()]), "nappy"))
        .collect();
    // A mapping change that lost the titles: the same rows, every title empty.
    let emptied: Vec<_> = (0..40u64).map(|i| doc(i, None, "nappy")).collect();
    index_docs(&client, &live, &live_docs).await;
    index_docs(&client, &new, &emptied).await;
    let config = SearchGuardConfig::parse(
        r#"{"min_ratio": 0.9, "queries": [
            {"name": "title sunset", "query": {"match": {"title": "sunset"}}},
            {"name": "source nappy", "query": {"bool": {"filter": [{"term": {"source": "nappy"}}]}}},
            {"name": "audio only", "media": ["audio"], "query": {"match_all": {}}}]}"#,
    )
    .unwrap();

    let err = check_search_guard(&client, &config, MediaType::Image, &alias, &new, false)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::SearchGuardFailed);
    assert!(
        err.message.contains(&format!(
            "query \"title sunset\" finds 0 documents in {new} against 30"
        )),
        "{}",
        err.message
    );
    assert!(!err.message.contains("source nappy"), "{}", err.message);

    // The override promotes anyway, and says so.
    let report = check_search_guard(&client, &config, MediaType::Image, &alias, &new, true)
        .await
        .unwrap();
    assert!(report.ran && report.overridden);
    let names: Vec<&str> = report.queries.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["title sunset", "source nappy"]);
    assert!(!report.queries[0].passed && report.queries[1].passed);

    // The live index against itself passes, with its figures.
    let same = check_search_guard(&client, &config, MediaType::Image, &alias, &live, false)
        .await
        .unwrap();
    assert!(same
        .queries
        .iter()
        .all(|q| q.passed && q.ratio == Some(1.0)));
    assert_eq!(same.queries[0].live_hits, 30);

    // No live index (a first refresh): nothing to compare, nothing refused.
    let first = check_search_guard(
        &client,
        &config,
        MediaType::Image,
        &unique("none"),
        &new,
        false,
    )
    .await
    .unwrap();
    assert!(!first.ran && first.queries.is_empty());
    cleanup(&client, &[&live, &new]).await;
}

#[tokio::test]
async fn the_builtin_guard_passes_a_faithful_copy_of_the_live_index() {
    let client = client();
    let alias = unique("builtin");
    let (live, new) = (format!("{alias}-live"), format!("{alias}-new"));
    new_index(&client, &live).await;
    new_index(&client, &new).await;
    add_alias(&client, &live, &alias).await;
    let docs: Vec<_> = (0..20u64)
        .map(|i| doc(i, Some("Sunset in the forest"), "nappy"))
        .collect();
    index_docs(&client, &live, &docs).await;
    index_docs(&client, &new, &docs).await;
    let config = SearchGuardConfig::builtin().unwrap();
    let report = check_search_guard(&client, &config, MediaType::Image, &alias, &new, false)
        .await
        .unwrap();
    assert!(report.ran && !report.overridden);
    assert!(
        report.queries.iter().any(|q| q.live_hits > 0),
        "the built-in queries must find the sample's documents: {report:?}"
    );
    cleanup(&client, &[&live, &new]).await;
}
