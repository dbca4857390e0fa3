//! Alias promotion and deletion of old indices against a real Elasticsearch.

mod es_support;

use elasticsearch::http::Method;
use es_support::*;
use refresh_core::error::ErrorKind;
use refresh_core::es::{
    create_index, delete_indices, indices_of_alias, promote_alias, SearchClient,
};
use refresh_core::media::MediaType;

async fn new_index(client: &SearchClient, name: &str) {
    create_index(client, MediaType::Audio, name, 1)
        .await
        .unwrap();
}

#[tokio::test]
async fn promotion_swaps_the_alias_atomically() {
    let client = client();
    let alias = unique("alias");
    let (old, new) = (format!("{alias}-old"), format!("{alias}-new"));
    new_index(&client, &old).await;
    new_index(&client, &new).await;

    // First promotion: no previous index.
    let first = promote_alias(&client, &alias, &old).await.unwrap();
    assert_eq!(first.previous_indices, Vec::<String>::new());
    assert_eq!(
        indices_of_alias(&client, &alias).await.unwrap(),
        vec![old.clone()]
    );

    let swap = promote_alias(&client, &alias, &new).await.unwrap();
    assert_eq!(swap.alias, alias);
    assert_eq!(swap.index, new);
    assert_eq!(swap.previous_indices, vec![old.clone()]);
    assert_eq!(
        indices_of_alias(&client, &alias).await.unwrap(),
        vec![new.clone()]
    );

    // Again: nothing to do, nothing changes.
    let again = promote_alias(&client, &alias, &new).await.unwrap();
    assert!(again.previous_indices.is_empty());
    assert_eq!(
        indices_of_alias(&client, &alias).await.unwrap(),
        vec![new.clone()]
    );
    cleanup(&client, &[&old, &new]).await;
}

#[tokio::test]
async fn alias_on_two_indices_is_refused_and_left_alone() {
    let client = client();
    let alias = unique("alias2");
    let (a, b, c) = (
        format!("{alias}-a"),
        format!("{alias}-b"),
        format!("{alias}-c"),
    );
    for index in [&a, &b, &c] {
        new_index(&client, index).await;
    }
    add_alias(&client, &a, &alias).await;
    add_alias(&client, &b, &alias).await;
    let err = promote_alias(&client, &alias, &c).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState);
    assert!(
        err.message.contains(&a) && err.message.contains(&b),
        "{}",
        err.message
    );
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(indices_of_alias(&client, &alias).await.unwrap(), expected);
    cleanup(&client, &[&a, &b, &c]).await;
}

#[tokio::test]
async fn promoting_to_a_missing_index_changes_nothing() {
    let client = client();
    let alias = unique("alias3");
    let live = format!("{alias}-live");
    new_index(&client, &live).await;
    promote_alias(&client, &alias, &live).await.unwrap();
    let err = promote_alias(&client, &alias, &format!("{alias}-missing"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState, "{}", err.message);
    assert_eq!(
        indices_of_alias(&client, &alias).await.unwrap(),
        vec![live.clone()]
    );
    assert_eq!(
        promote_alias(&client, "bad*", &live)
            .await
            .unwrap_err()
            .kind,
        ErrorKind::InvalidInput
    );
    cleanup(&client, &[&live]).await;
}

#[tokio::test]
async fn delete_refuses_aliased_indices_and_deletes_the_rest() {
    let client = client();
    let base = unique("del");
    let (live, old1, old2) = (
        format!("{base}-live"),
        format!("{base}-old1"),
        format!("{base}-old2"),
    );
    let alias = format!("{base}-alias");
    for index in [&live, &old1, &old2] {
        new_index(&client, index).await;
    }
    add_alias(&client, &live, &alias).await;

    // One aliased index in the list: refused, and nothing at all is deleted.
    let err = delete_indices(&client, &[old1.clone(), live.clone(), old2.clone()])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState);
    assert!(
        err.message.contains(&live) && err.message.contains(&alias),
        "{}",
        err.message
    );
    for index in [&live, &old1, &old2] {
        assert_eq!(
            raw(&client, Method::Head, &format!("/{index}"), None)
                .await
                .0,
            200,
            "{index} survives"
        );
    }
    // An alias name is not an index name.
    let err = delete_indices(&client, std::slice::from_ref(&alias))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidState, "{}", err.message);
    assert_eq!(
        raw(&client, Method::Head, &format!("/{live}"), None)
            .await
            .0,
        200
    );
    // Wildcards never reach Elasticsearch.
    let err = delete_indices(&client, &[format!("{base}-*")])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);

    let gone = format!("{base}-never-existed");
    let done = delete_indices(
        &client,
        &[old1.clone(), old2.clone(), gone.clone(), old1.clone()],
    )
    .await
    .unwrap();
    assert_eq!(done.deleted, vec![old1.clone(), old2.clone()]);
    assert_eq!(done.missing, vec![gone]);
    for index in [&old1, &old2] {
        assert_eq!(
            raw(&client, Method::Head, &format!("/{index}"), None)
                .await
                .0,
            404
        );
    }
    assert_eq!(
        raw(&client, Method::Head, &format!("/{live}"), None)
            .await
            .0,
        200
    );
    cleanup(&client, &[&live]).await;
}
