//! Property / fuzz targets over what comes from outside: the execution input, the `tags`
//! column and whole source rows. None of them may panic; each either succeeds or fails the
//! way the contract says.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use refresh_core::config::RefreshDefaults;
use refresh_core::document::{document_fields, to_document, write_bulk_action, SourceRow};
use refresh_core::error::ErrorKind;
use refresh_core::input::parse_refresh_input;
use refresh_core::media::MediaType;
use refresh_core::tags::TagFilterConfig;
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// The execution input's fields (docs/ARCHITECTURE.md "Execution input").
const INPUT_FIELDS: [&str; 10] = [
    "media_type",
    "environment",
    "index_suffix",
    "skip_copy",
    "allow_concurrent",
    "wait_if_busy",
    "max_record_drop_pct",
    "override_record_drop",
    "override_search_guard",
    "row_limit",
];

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9_+*,/. -]{0,12}",
        2 => "(?s).{0,24}",
        1 => Just("image".to_string()),
        1 => Just("audio".to_string()),
        1 => Just("staging".to_string()),
        1 => Just("production".to_string()),
        1 => "[a-z0-9]{250,300}",
    ]
}

fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        (-200.0f64..200.0).prop_map(|f| json!(f)),
        (0u64..5).prop_map(|u| json!(u)),
    ]
}

/// Any JSON value, nested a few levels.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(arb_string(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects that look like execution inputs: mostly the real keys, with any values, and now
/// and then a stranger (a context key, a near-miss spelling, anything).
fn arb_input() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        8 => proptest::sample::select(INPUT_FIELDS.to_vec()).prop_map(str::to_string),
        1 => proptest::sample::select(vec!["start_time", "execution_id", "indexsuffix", "Media_Type", ""])
            .prop_map(str::to_string),
        1 => arb_string(),
    ];
    let value = prop_oneof![
        3 => proptest::sample::select(vec![
            json!("image"), json!("audio"), json!("staging"), json!("production"),
            json!(true), json!(false), json!(null), json!(10.0), json!(1), json!("init"),
        ]),
        2 => arb_json(),
    ];
    let base = proptest::bool::ANY;
    (base, proptest::collection::vec((key, value), 0..8)).prop_map(|(seed, pairs)| {
        let mut object = Map::new();
        if seed {
            object.insert("media_type".into(), json!("image"));
            object.insert("environment".into(), json!("staging"));
        }
        for (k, v) in pairs {
            object.insert(k, v);
        }
        Value::Object(object)
    })
}

fn defaults() -> RefreshDefaults {
    RefreshDefaults {
        launch_template_staging: Some("lt-staging".into()),
        launch_template_production: Some("lt-production".into()),
        ..RefreshDefaults::default()
    }
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 0, 4, 5).unwrap()
}

/// The input either validates into a `P` that passes its own re-check, or is refused as
/// `InvalidInput` with a message naming a field (or the input as a whole).
fn check_input(value: &Value) -> Result<(), TestCaseError> {
    match parse_refresh_input(value).and_then(|input| input.validate(&defaults(), start())) {
        Ok(params) => {
            prop_assert!(params.check().is_ok(), "{value}: {params:?}");
            let object = value.as_object().unwrap();
            prop_assert!(object.keys().all(|k| INPUT_FIELDS.contains(&k.as_str())));
        }
        Err(e) => {
            prop_assert_eq!(e.kind, ErrorKind::InvalidInput, "{}: {}", value, e.message);
            let named = e.message.contains("execution input")
                || INPUT_FIELDS.iter().any(|f| e.message.contains(f))
                || value.as_object().is_some_and(|o| {
                    o.keys()
                        .any(|k| !k.is_empty() && e.message.contains(k.as_str()))
                });
            prop_assert!(named, "{}: no field named in {:?}", value, e.message);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn any_json_value_validates_or_is_invalid_input(value in arb_json()) {
        check_input(&value)?;
    }

    #[test]
    fn any_input_like_object_validates_or_is_invalid_input(value in arb_input()) {
        check_input(&value)?;
    }
}

// --- (b) the tag filter against an independent reading of DESIGN §3 ---------------------

/// `[+-]?(digits(.digits*)?|.digits)([eE][+-]?d{1,3})?`, by hand.
fn is_decimal_string(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - frac_start;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if !(1..=3).contains(&(i - exp_start)) {
            return false;
        }
    }
    i == b.len()
}

/// One tag by the brief's rules: a string name; accuracy absent/null or a number (or a
/// decimal string) at least the threshold; provider not denied; lower-cased name neither a
/// denied name nor containing a denied substring.
fn reference_keeps(c: &TagFilterConfig, tag: &Value) -> bool {
    let Value::Object(tag) = tag else {
        return false;
    };
    let Some(Value::String(name)) = tag.get("name") else {
        return false;
    };
    let accuracy = match tag.get("accuracy") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_f64().unwrap()),
        Some(Value::String(s)) if is_decimal_string(s) => Some(s.parse::<f64>().unwrap()),
        Some(_) => return false,
    };
    if accuracy.is_some_and(|a| a < c.min_accuracy || a.is_nan()) {
        return false;
    }
    if let Some(Value::String(p)) = tag.get("provider") {
        if c.denied_providers.contains(p) {
            return false;
        }
    }
    let lower: String = name.chars().map(|ch| ch.to_ascii_lowercase()).collect();
    if c.denied_names
        .iter()
        .any(|n| n.to_ascii_lowercase() == lower)
    {
        return false;
    }
    !c.denied_substrings
        .iter()
        .any(|s| lower.contains(&s.to_ascii_lowercase()))
}

fn reference_filter(c: &TagFilterConfig, tags: Option<&Value>) -> Option<Value> {
    match tags {
        Some(Value::Array(items)) => Some(Value::Array(
            items
                .iter()
                .filter(|t| reference_keeps(c, t))
                .cloned()
                .collect(),
        )),
        _ => None,
    }
}

/// Tags built from the denied lists (in mixed case, inside other words), near misses,
/// non-ASCII letters, and accuracies of every shape.
fn arb_tag() -> impl Strategy<Value = Value> {
    let defaults = TagFilterConfig::default();
    let mut words: Vec<String> = defaults
        .denied_names
        .iter()
        .chain(&defaults.denied_substrings)
        .cloned()
        .collect();
    words.extend(
        [
            "cat",
            "bycycle",
            "İstanbul",
            "ǅ",
            "ß",
            "BY",
            "Pdm",
            "No Person",
            "a b",
        ]
        .map(String::from),
    );
    let word = proptest::sample::select(words);
    let name = prop_oneof![
        4 => (word.clone(), word, any::<bool>(), "[a-zA-Z :=-]{0,3}").prop_map(|(a, b, upper, mid)| {
            let s = format!("{a}{mid}{b}");
            Value::String(if upper { s.to_uppercase() } else { s })
        }),
        2 => "(?s).{0,12}".prop_map(Value::String),
        1 => arb_json(),
    ];
    let accuracy = prop_oneof![
        (0.0f64..=1.0).prop_map(|a| json!(a)),
        (0.85f64..=0.95).prop_map(|a| json!(a.to_string())),
        "[+-]?[0-9]{0,2}\\.?[0-9]{0,3}([eE][+-]?[0-9]{0,4})?".prop_map(Value::String),
        proptest::sample::select(vec![
            "0.9", "0.90", ".9", "9e-1", "1e999", "-1e999", " 0.95", "0x1", "NaN", "inf", ""
        ])
        .prop_map(|s| json!(s)),
        arb_json(),
    ];
    let provider = prop_oneof![
        Just(json!("rekognition")),
        Just(json!("Rekognition")),
        Just(json!("clarifai")),
        arb_json(),
    ];
    (
        proptest::option::of(name),
        proptest::option::of(accuracy),
        proptest::option::of(provider),
        proptest::option::of((arb_string(), arb_json())),
    )
        .prop_map(|(name, accuracy, provider, extra)| {
            let mut tag = Map::new();
            if let Some((k, v)) = extra {
                tag.insert(k, v);
            }
            if let Some(n) = name {
                tag.insert("name".into(), n);
            }
            if let Some(a) = accuracy {
                tag.insert("accuracy".into(), a);
            }
            if let Some(p) = provider {
                tag.insert("provider".into(), p);
            }
            Value::Object(tag)
        })
}

fn arb_tags() -> impl Strategy<Value = Option<Value>> {
    proptest::option::of(prop_oneof![
        6 => proptest::collection::vec(prop_oneof![8 => arb_tag(), 1 => arb_json()], 0..8)
            .prop_map(Value::Array),
        1 => arb_json(),
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn tag_filter_agrees_with_the_reference(tags in arb_tags(), threshold in prop_oneof![Just(0.9), 0.0f64..=1.0]) {
        let config = TagFilterConfig { min_accuracy: threshold, ..TagFilterConfig::default() };
        let actual = config.filter(tags.as_ref());
        prop_assert_eq!(&actual, &reference_filter(&config, tags.as_ref()), "{:?}", tags);
        if let (Some(Value::Array(kept)), Some(Value::Array(all))) = (&actual, &tags) {
            // Kept tags are unchanged and in their order: a subsequence of the input.
            let mut rest = all.iter();
            prop_assert!(kept.iter().all(|k| rest.any(|t| t == k)));
        }
    }
}

// --- (c) row → document → NDJSON --------------------------------------------------------

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "(?s).{0,40}",
        2 => "[\\x00-\\x1f\"\\\\\u{2028}\u{feff}]{0,8}",
        // Around the 2000-character description cut, multi-byte characters included.
        1 => ("(?s).{1,4}", 480usize..700).prop_map(|(s, n)| s.repeat(n)),
    ]
}

fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MIN_POSITIVE),
        Just(1e-320),
        -2.0f64..2.0,
    ]
}

fn arb_row() -> impl Strategy<Value = SourceRow> {
    let opt_text = || proptest::option::of(arb_text());
    (
        (
            any::<i64>(),
            proptest::option::of(any::<i64>()),
            arb_text(),
            arb_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
        ),
        (
            opt_text(),
            opt_text(),
            opt_text(),
            proptest::option::of(arb_json()),
            proptest::option::of(arb_json()),
            arb_tags(),
            proptest::option::of(arb_f64()),
            opt_text(),
        ),
        (
            proptest::option::of(any::<i32>()),
            proptest::option::of(any::<i32>()),
            proptest::option::of(any::<i32>()),
            proptest::option::of(arb_json()),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (id, created, identifier, license, provider, source, category, title),
                (
                    creator,
                    url,
                    description,
                    meta_mature,
                    meta_authority_boost,
                    tags,
                    popularity,
                    filetype,
                ),
                (width, height, duration, alt_files, removed, deleted, mature_listed),
            )| SourceRow {
                id,
                created_on: created
                    .and_then(|s| Utc.timestamp_opt(s % 300_000_000_000, 0).single()),
                identifier,
                license,
                provider,
                source,
                category,
                title,
                creator,
                url,
                removed_from_source: removed && id % 4 == 0,
                description,
                meta_mature,
                meta_authority_boost,
                tags,
                standardized_popularity: popularity,
                filetype,
                width,
                height,
                duration,
                alt_files,
                deleted: deleted && id % 4 == 1,
                mature_listed,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn any_row_becomes_valid_ndjson_or_is_skipped(row in arb_row(), audio in any::<bool>()) {
        let media = if audio { MediaType::Audio } else { MediaType::Image };
        let Some(doc) = to_document(media, &row) else {
            prop_assert!(row.removed_from_source || row.deleted);
            return Ok(());
        };
        prop_assert!(!row.removed_from_source && !row.deleted);
        let mut out = b"prefix\n".to_vec();
        write_bulk_action(&doc, &mut out).map_err(|e| TestCaseError::fail(format!("{e}: {row:?}")))?;
        let text = std::str::from_utf8(&out[7..]).expect("NDJSON is UTF-8");
        prop_assert!(text.ends_with('\n'));
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        prop_assert_eq!(lines.len(), 2, "{}", text);
        let action: Value = serde_json::from_str(lines[0]).map_err(|e| TestCaseError::fail(format!("action line: {e}")))?;
        prop_assert_eq!(&action, &json!({"index": {"_id": row.id.to_string()}}));
        let body: Value = serde_json::from_str(lines[1]).map_err(|e| TestCaseError::fail(format!("document line: {e}: {}", lines[1])))?;
        prop_assert_eq!(&body["id"], &json!(row.id));
        prop_assert_eq!(body["identifier"].as_str(), Some(row.identifier.as_str()));
        let keys: BTreeSet<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = document_fields(media).collect();
        prop_assert_eq!(keys, expected);
    }
}
