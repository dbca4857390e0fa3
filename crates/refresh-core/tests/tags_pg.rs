//! The SQL tag filter and the pure Rust reference agree, on random tag arrays (malformed tags
//! included) and random configurations, evaluated by the real PostgreSQL at TEST_PG_URL.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use refresh_core::tags::{TagFilterConfig, TagFilterSql};
use serde_json::{json, Map, Value};

/// Arrays per query: each proptest case is one round trip.
const ARRAYS_PER_CASE: usize = 96;
const CASES: u32 = 24;

fn name() -> impl Strategy<Value = String> {
    let denied = TagFilterConfig::default();
    let mut specials: Vec<String> = denied.denied_names.clone();
    specials.extend(denied.denied_substrings.iter().map(|s| format!("x{s}y")));
    specials.extend(
        [
            "BY",
            "No Person",
            "ByCycle",
            "UPLOADED",
            "Cc0",
            "ÉCOLE",
            "İstanbul",
            "straße",
            "by ",
            "",
        ]
        .map(String::from),
    );
    prop_oneof![
        3 => proptest::sample::select(specials),
        2 => "[a-zA-Z :=-]{0,12}",
        1 => "\\PC{0,10}",
    ]
}

fn accuracy() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        3 => Just(None),
        3 => (0.0f64..1.0).prop_map(|a| Some(json!(a))),
        2 => proptest::sample::select(vec![0.9, 0.8999999999999999, 0.9000000000000001, 0.0, 1.0, 0.89, 0.91, 1e-30, 12.5, -1.0])
            .prop_map(|a| Some(json!(a))),
        1 => Just(Some(json!(1))),
        1 => Just(Some(json!(0))),
        1 => (0.0f64..1.0).prop_map(|a| Some(json!(a.to_string()))),
        1 => proptest::sample::select(vec!["0.9", "0.90", "1", "1.", ".95", "+0.95", "9e-1", "1E0", "1e999", "1e-999", "high", "", " 0.95", "0.9.1", "NaN", "inf", "-0.5"])
            .prop_map(|s| Some(json!(s))),
        1 => proptest::sample::select(vec![json!(null), json!(true), json!({"v": 1}), json!([0.95])]).prop_map(Some),
    ]
}

fn provider() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        3 => Just(None),
        2 => proptest::sample::select(vec!["rekognition", "Rekognition", "clarifai", "rekognition ", "a'b"]).prop_map(|s| Some(json!(s))),
        1 => proptest::sample::select(vec![json!(null), json!(5), json!(["rekognition"])]).prop_map(Some),
    ]
}

fn tag() -> impl Strategy<Value = Value> {
    let object = (name(), accuracy(), provider(), any::<bool>()).prop_map(|(n, a, p, extra)| {
        let mut m = Map::new();
        m.insert("name".into(), json!(n));
        if let Some(a) = a {
            m.insert("accuracy".into(), a);
        }
        if let Some(p) = p {
            m.insert("provider".into(), p);
        }
        if extra {
            m.insert("extra".into(), json!({"k": [1, "two"]}));
        }
        Value::Object(m)
    });
    let bad_name = proptest::sample::select(vec![
        json!(42),
        json!(null),
        json!(true),
        json!({"n": "x"}),
        json!(["cat"]),
    ]);
    let missing_name = (accuracy(), provider()).prop_map(|(a, p)| {
        let mut m = Map::new();
        if let Some(a) = a {
            m.insert("accuracy".into(), a);
        }
        if let Some(p) = p {
            m.insert("provider".into(), p);
        }
        Value::Object(m)
    });
    prop_oneof![
        8 => object,
        1 => (bad_name, accuracy()).prop_map(|(n, a)| {
            let mut m = Map::new();
            m.insert("name".into(), n);
            if let Some(a) = a { m.insert("accuracy".into(), a); }
            Value::Object(m)
        }),
        1 => missing_name,
        1 => proptest::sample::select(vec![json!("cat"), json!(7), json!(null), json!(true), json!([{"name": "cat"}])]),
    ]
}

/// A whole `tags` value; `None` is SQL NULL.
fn tags_value() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        12 => proptest::collection::vec(tag(), 0..8).prop_map(|v| Some(Value::Array(v))),
        1 => Just(None),
        1 => proptest::sample::select(vec![json!(null), json!({"name": "cat"}), json!("cat"), json!(3)]).prop_map(Some),
    ]
}

fn config() -> impl Strategy<Value = TagFilterConfig> {
    prop_oneof![
        3 => Just(TagFilterConfig::default()),
        1 => (
            proptest::sample::select(vec![0.0, 0.5, 0.9, 0.95, 1.0]),
            proptest::collection::vec("[a-zA-Z'\\\\%_]{1,8}", 0..3),
            proptest::collection::vec("[a-zA-Z :=_%'\\\\]{1,8}", 0..4),
            proptest::collection::vec("[a-zA-Z:=%_'\\\\]{1,3}", 0..4),
        )
            .prop_map(|(min_accuracy, denied_providers, denied_names, denied_substrings)| TagFilterConfig {
                min_accuracy,
                denied_providers,
                denied_names,
                denied_substrings,
            }),
    ]
}

/// Filters every value in PostgreSQL and compares the result with `expected` there, as jsonb
/// values (exact numerics; serde_json's default float parsing can be one ULP off, so results
/// are not parsed back into Rust for the comparison). Returns `(index, got)` of mismatches.
async fn mismatches_in_postgres(
    client: &tokio_postgres::Client,
    config: &TagFilterConfig,
    values: &[Option<Value>],
    expected: &[Option<Value>],
) -> Vec<(i64, Option<String>)> {
    let sql = format!(
        "SELECT x.ord, x.got::text FROM ( \
           SELECT t.ord, {} AS got, t.expected \
           FROM unnest($5::jsonb[], $6::jsonb[]) WITH ORDINALITY AS t(tags, expected, ord)) x \
         WHERE x.got IS DISTINCT FROM x.expected ORDER BY x.ord",
        TagFilterSql::expression("t.tags", 1)
    );
    let tags = config.sql_params();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = tags.params().to_vec();
    let values = values.to_vec();
    let expected = expected.to_vec();
    params.push(&values);
    params.push(&expected);
    client
        .query(&sql, &params)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, i64>(0) - 1, r.get::<_, Option<String>>(1)))
        .collect()
}

#[test]
fn sql_filter_agrees_with_the_rust_reference() {
    let url = testkit::test_pg_url();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(testkit::connect(&url));
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        ..Config::default()
    });
    let strategy = (
        config(),
        proptest::collection::vec(tags_value(), ARRAYS_PER_CASE),
    );
    runner
        .run(&strategy, |(config, values)| {
            let expected: Vec<Option<Value>> =
                values.iter().map(|v| config.filter(v.as_ref())).collect();
            let wrong = rt.block_on(mismatches_in_postgres(&client, &config, &values, &expected));
            if let Some((k, got)) = wrong.first() {
                let k = *k as usize;
                prop_assert!(
                    false,
                    "{} of {} differ; first: input {:?}, SQL {:?}, Rust {:?}, config {:?}",
                    wrong.len(),
                    values.len(),
                    values[k],
                    got,
                    expected[k],
                    config
                );
            }
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn numbers_compare_as_jsonb_values_not_text() {
    let client = testkit::connect(&testkit::test_pg_url()).await;
    // `0.90` and `1.0E0` survive unchanged, and the result equals the input as jsonb even
    // though a text comparison with a re-serialised array would differ.
    let input = json!([{"name": "Sunset", "accuracy": 0.9}, {"name": "beach", "accuracy": 1.0}]);
    let row = client
        .query_one(
            &format!(
                "SELECT {expr} = t.tags, {expr}::text = t.tags::text, t.tags::text \
                 FROM (SELECT '[{{\"name\":\"Sunset\",\"accuracy\":0.900}},{{\"name\":\"beach\",\"accuracy\":1.0E0}}]'::jsonb AS tags) t",
                expr = TagFilterSql::expression("t.tags", 1)
            ),
            &TagFilterConfig::default().sql_params().params(),
        )
        .await
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "the filtered tags equal the input as jsonb"
    );
    assert!(
        row.get::<_, bool>(1),
        "and as text: the filter keeps each number as PostgreSQL stored it"
    );
    let as_text: String = row.get(2);
    assert_eq!(
        as_text, r#"[{"name": "Sunset", "accuracy": 0.900}, {"name": "beach", "accuracy": 1.0}]"#,
        "PostgreSQL keeps 0.900 as written (and 1.0E0 as 1.0)"
    );
    assert_ne!(
        as_text,
        input.to_string(),
        "a re-serialised array would differ"
    );
    assert_eq!(TagFilterConfig::default().filter(Some(&input)), Some(input));
}
