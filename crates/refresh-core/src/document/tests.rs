use super::*;
use crate::tags::{tag_accuracy, TagAccuracy, TagFilterConfig};
use proptest::prelude::*;
use serde_json::json;

/// The document's keys, sorted.
fn keys(value: &Value) -> Vec<&str> {
    sorted(
        value
            .as_object()
            .expect("a document is an object")
            .keys()
            .map(String::as_str),
    )
}

fn sorted<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut keys: Vec<&str> = keys.into_iter().collect();
    keys.sort_unstable();
    keys
}

fn image_row() -> SourceRow {
    SourceRow {
        id: 42,
        created_on: Some("2024-05-01T12:30:00Z".parse().unwrap()),
        identifier: "8b7a2d2e-2b8e-4cf1-9f55-6c1b6a1f3f10".into(),
        license: "BY-SA".into(),
        provider: Some("flickr".into()),
        source: Some("flickr".into()),
        category: Some("photograph".into()),
        title: Some("Running animals".into()),
        creator: Some("Ada".into()),
        url: Some("https://live.staticflickr.com/1/photo.JPG?size=large".into()),
        description: Some("A herd".into()),
        tags: Some(
            json!([{"name": "cat", "accuracy": 0.97, "provider": "clarifai"}, {"name": "dog"}]),
        ),
        standardized_popularity: Some(0.5),
        filetype: Some("jpg".into()),
        width: Some(1920),
        height: Some(1080),
        ..SourceRow::default()
    }
}

fn audio_row() -> SourceRow {
    SourceRow {
        id: 7,
        identifier: "0d1f0c4e-9a3b-4a55-8d43-2b3b3f2f6a11".into(),
        license: "cc0".into(),
        provider: Some("freesound".into()),
        source: Some("freesound".into()),
        url: Some("https://freesound.org/data/previews/1/1.mp3".into()),
        filetype: Some("mp3".into()),
        duration: Some(95_000),
        alt_files: Some(
            json!([{"url": "a.ogg", "filetype": "ogg"}, {"url": "b.MP3", "filetype": "MP3"}]),
        ),
        ..SourceRow::default()
    }
}

#[test]
fn image_document_has_every_field() {
    let row = image_row();
    let doc = to_document(MediaType::Image, &row).unwrap();
    let value = serde_json::to_value(&doc).unwrap();
    assert_eq!(
        value,
        json!({
            "id": 42,
            "created_on": "2024-05-01T12:30:00Z",
            "identifier": "8b7a2d2e-2b8e-4cf1-9f55-6c1b6a1f3f10",
            "license": "by-sa",
            "provider": "flickr",
            "source": "flickr",
            "category": "photograph",
            "title": "Running animals",
            "creator": "Ada",
            "description": "A herd",
            "mature": false,
            "tags": [{"name": "cat", "accuracy": 0.97}, {"name": "dog", "accuracy": null}],
            "url": "https://live.staticflickr.com/1/photo.JPG?size=large",
            "standardized_popularity": 50.0,
            "authority_boost": 75.0,
            "max_boost": 75.0,
            "min_boost": 50.0,
            "aspect_ratio": "wide",
            "size": "large",
            "extension": "jpg"
        })
    );
}

#[test]
fn audio_document_has_length_filetype_and_extensions() {
    let row = audio_row();
    let value = serde_json::to_value(to_document(MediaType::Audio, &row).unwrap()).unwrap();
    assert_eq!(value["length"], "short");
    assert_eq!(value["filetype"], "mp3");
    assert_eq!(value["extension"], json!(["ogg", "mp3"]));
    assert_eq!(value["license"], "cc0");
    // No popularity, no authority: written as null, and both bounds fall back to 1.
    assert_eq!(value.get("standardized_popularity"), Some(&Value::Null));
    assert_eq!(value.get("authority_boost"), Some(&Value::Null));
    assert_eq!(value["max_boost"], 1.0);
    assert_eq!(value["min_boost"], 1.0);
    for image_field in ["aspect_ratio", "size"] {
        assert!(value.get(image_field).is_none(), "{image_field} on audio");
    }
    assert_eq!(value["tags"], json!([]));
}

#[test]
fn image_document_has_no_audio_fields() {
    let value = serde_json::to_value(to_document(MediaType::Image, &image_row()).unwrap()).unwrap();
    for audio_field in ["length", "filetype"] {
        assert!(value.get(audio_field).is_none(), "{audio_field} on image");
    }
}

#[test]
fn absent_values_are_written_as_null() {
    // A row with nothing but its required columns.
    let bare = SourceRow {
        id: 3,
        identifier: "e0c8f6a2-6a53-4d3e-8f0e-0c6f7f1a2b3c".into(),
        license: "by".into(),
        ..SourceRow::default()
    };
    for media in MediaType::ALL {
        let value = serde_json::to_value(to_document(media, &bare).unwrap()).unwrap();
        // Every key of the media's model, and nothing else.
        assert_eq!(keys(&value), sorted(document_fields(media)), "{media}");
        for field in [
            "created_on",
            "provider",
            "source",
            "category",
            "title",
            "creator",
            "description",
            "url",
            "standardized_popularity",
            "authority_boost",
            "extension",
        ] {
            assert_eq!(value[field], Value::Null, "{media}: {field}");
        }
        let own: &[&str] = match media {
            MediaType::Image => IMAGE_FIELDS,
            MediaType::Audio => AUDIO_FIELDS,
        };
        for field in own {
            assert_eq!(value[*field], Value::Null, "{media}: {field}");
        }
        assert_eq!(value["id"], 3);
        assert_eq!(value["mature"], false);
        assert_eq!(value["tags"], json!([]));
        assert_eq!(value["max_boost"], 1.0);
        assert_eq!(value["min_boost"], 1.0);
    }
    // Each key written once (a parsed `Value` would hide a duplicate).
    for media in MediaType::ALL {
        let text = serde_json::to_string(&to_document(media, &image_row()).unwrap()).unwrap();
        for field in document_fields(media) {
            assert_eq!(
                text.matches(&format!("\"{field}\":")).count(),
                1,
                "{media}: {field}"
            );
        }
    }
    // A full row has every key too, none of them null.
    let full = serde_json::to_value(to_document(MediaType::Image, &image_row()).unwrap()).unwrap();
    assert_eq!(keys(&full), sorted(document_fields(MediaType::Image)));
    assert!(full.as_object().unwrap().values().all(|v| !v.is_null()));
}

#[test]
fn field_lists_are_disjoint() {
    let image = sorted(document_fields(MediaType::Image));
    let audio = sorted(document_fields(MediaType::Audio));
    let mut deduped = image.clone();
    deduped.dedup();
    assert_eq!(deduped, image);
    let mut deduped = audio.clone();
    deduped.dedup();
    assert_eq!(deduped, audio);
    for field in IMAGE_FIELDS {
        assert!(!audio.contains(field), "{field}");
    }
    for field in AUDIO_FIELDS {
        assert!(!image.contains(field), "{field}");
    }
}

#[test]
fn removed_or_deleted_rows_are_skipped() {
    let mut row = image_row();
    assert!(to_document(MediaType::Image, &row).is_some());
    row.removed_from_source = true;
    assert!(to_document(MediaType::Image, &row).is_none());
    row.removed_from_source = false;
    row.deleted = true;
    assert!(to_document(MediaType::Audio, &row).is_none());
}

#[test]
fn mature_from_meta_data_or_mature_table() {
    let mut row = image_row();
    assert!(!to_document(MediaType::Image, &row).unwrap().mature);
    row.mature_listed = true;
    assert!(to_document(MediaType::Image, &row).unwrap().mature);
    row.mature_listed = false;
    row.meta_mature = Some(json!(true));
    assert!(to_document(MediaType::Image, &row).unwrap().mature);
    assert!(is_mature_flag(Some(&json!("True"))));
    assert!(!is_mature_flag(Some(&json!(false))));
    assert!(!is_mature_flag(Some(&json!("no"))));
    assert!(!is_mature_flag(Some(&json!(1))));
    assert!(!is_mature_flag(None));
}

#[test]
fn popularity_is_scaled_clamped_and_absent_when_zero() {
    assert_eq!(standardized_popularity(Some(0.5)), Some(50.0));
    assert_eq!(standardized_popularity(Some(3.0)), Some(100.0));
    assert_eq!(standardized_popularity(Some(-0.2)), None);
    assert_eq!(standardized_popularity(Some(0.0)), None);
    assert_eq!(standardized_popularity(None), None);
    assert_eq!(standardized_popularity(Some(f64::NAN)), None);
    assert_eq!(standardized_popularity(Some(f64::INFINITY)), Some(100.0));
    // × 100 is still below the smallest normal f32.
    assert_eq!(standardized_popularity(Some(1e-41)), None);
    assert_eq!(standardized_popularity(Some(1e-30)), Some(1e-28));
}

#[test]
fn rank_feature_rejects_zero_subnormal_and_non_finite() {
    assert_eq!(rank_feature(0.0), None);
    assert_eq!(rank_feature(-1.0), None);
    assert_eq!(rank_feature(1.0e-39), None); // subnormal
    assert_eq!(rank_feature(f32::MIN_POSITIVE), Some(f32::MIN_POSITIVE));
    assert_eq!(rank_feature(f32::NAN), None);
    assert_eq!(rank_feature(f32::INFINITY), None);
    assert_eq!(rank_feature(1.5), Some(1.5));
}

#[test]
fn authority_boost_from_meta_data_then_provider() {
    assert_eq!(
        authority_boost(Some(&json!(40)), Some("flickr")),
        Some(40.0)
    );
    assert_eq!(authority_boost(Some(&json!("12.5")), None), Some(12.5));
    assert_eq!(authority_boost(Some(&json!(250)), None), Some(100.0));
    assert_eq!(authority_boost(Some(&json!(-3)), Some("flickr")), None);
    assert_eq!(authority_boost(Some(&json!(0)), Some("met")), None);
    assert_eq!(authority_boost(Some(&json!(1e-45)), None), None);
    // Not a number: fall back to the provider.
    assert_eq!(
        authority_boost(Some(&json!("high")), Some("met")),
        Some(90.0)
    );
    assert_eq!(
        authority_boost(Some(&json!(null)), Some("rawpixel")),
        Some(85.0)
    );
    assert_eq!(authority_boost(None, Some("stocksnap")), Some(85.0));
    assert_eq!(authority_boost(None, Some("behance")), Some(75.0));
    assert_eq!(authority_boost(None, Some("wikimedia")), None);
    assert_eq!(authority_boost(None, None), None);
}

#[test]
fn every_listed_provider_has_its_boost() {
    for p in CURATED_PROVIDERS {
        assert_eq!(provider_boost(p), Some(85.0), "{p}");
    }
    for p in CULTURAL_PROVIDERS {
        assert_eq!(provider_boost(p), Some(90.0), "{p}");
    }
    for p in SOCIAL_PROVIDERS {
        assert_eq!(provider_boost(p), Some(75.0), "{p}");
    }
    assert_eq!(provider_boost("Flickr"), None);
    assert_eq!(
        CURATED_PROVIDERS.len() + CULTURAL_PROVIDERS.len() + SOCIAL_PROVIDERS.len(),
        17
    );
}

#[test]
fn boost_bounds_use_one_for_absent_values() {
    assert_eq!(boost_bounds(None, None), (1.0, 1.0));
    assert_eq!(boost_bounds(Some(50.0), None), (50.0, 1.0));
    assert_eq!(boost_bounds(Some(0.5), Some(90.0)), (90.0, 0.5));
    assert_eq!(boost_bounds(None, Some(0.25)), (1.0, 0.25));
}

#[test]
fn description_is_cut_at_2000_characters_not_bytes() {
    let long: String = "é".repeat(2500);
    let cut = truncate_description(&long);
    assert_eq!(cut.chars().count(), 2000);
    assert_eq!(cut.len(), 4000);
    let exact = "a".repeat(2000);
    assert_eq!(truncate_description(&exact), exact);
    assert_eq!(truncate_description(""), "");
    let emoji = "🦀".repeat(2001);
    assert_eq!(truncate_description(&emoji).chars().count(), 2000);
}

#[test]
fn tags_keep_name_and_numeric_accuracy_only() {
    let tags = json!([
        {"name": "a", "accuracy": 0.95, "provider": "x"},
        {"name": "b", "accuracy": "high"},
        {"name": 3},
        {"accuracy": 0.99},
        "loose",
        {"name": "c"},
        {"name": "d", "accuracy": "0.95"},
        {"name": "e", "accuracy": null},
        {"name": "f", "accuracy": "1e999"}
    ]);
    let parsed = parse_tags(Some(&tags));
    let tag = |name, accuracy| Tag { name, accuracy };
    assert_eq!(
        parsed,
        vec![
            tag("a", Some(0.95)),
            tag("b", None),
            tag("c", None),
            // A decimal numeric string is its number, as the tag filter reads it.
            tag("d", Some(0.95)),
            tag("e", None),
            // Beyond the float range Elasticsearch would reject: no accuracy.
            tag("f", None),
        ]
    );
    assert_eq!(
        serde_json::to_value(&parsed).unwrap().as_array().unwrap()[..4].to_vec(),
        vec![
            json!({"name": "a", "accuracy": 0.95}),
            json!({"name": "b", "accuracy": null}),
            json!({"name": "c", "accuracy": null}),
            json!({"name": "d", "accuracy": 0.95}),
        ]
    );
    assert!(parse_tags(Some(&json!({"name": "x"}))).is_empty());
    assert!(parse_tags(Some(&Value::Null)).is_empty());
    assert!(parse_tags(None).is_empty());
}

#[test]
fn aspect_ratio_and_size_thresholds() {
    assert_eq!(aspect_ratio(Some(100), Some(200)), Some("tall"));
    assert_eq!(aspect_ratio(Some(200), Some(100)), Some("wide"));
    assert_eq!(aspect_ratio(Some(5), Some(5)), Some("square"));
    assert_eq!(aspect_ratio(None, Some(5)), None);
    assert_eq!(aspect_ratio(Some(0), Some(5)), None);

    assert_eq!(image_size(Some(639), Some(480)), Some("small"));
    assert_eq!(image_size(Some(640), Some(480)), Some("medium"));
    // Pixel count, not each side: 480×640 is the same area.
    assert_eq!(image_size(Some(480), Some(640)), Some("medium"));
    assert_eq!(image_size(Some(1599), Some(900)), Some("medium"));
    assert_eq!(image_size(Some(1600), Some(900)), Some("large"));
    assert_eq!(image_size(Some(i32::MAX), Some(i32::MAX)), Some("large"));
    assert_eq!(image_size(Some(1600), None), None);
    assert_eq!(image_size(Some(-1), Some(900)), None);
}

#[test]
fn length_buckets() {
    assert_eq!(audio_length(Some(1)), Some("shortest"));
    assert_eq!(audio_length(Some(29_999)), Some("shortest"));
    assert_eq!(audio_length(Some(30_000)), Some("short"));
    assert_eq!(audio_length(Some(119_999)), Some("short"));
    assert_eq!(audio_length(Some(120_000)), Some("medium"));
    assert_eq!(audio_length(Some(599_999)), Some("medium"));
    assert_eq!(audio_length(Some(600_000)), Some("long"));
    assert_eq!(audio_length(Some(0)), None);
    assert_eq!(audio_length(Some(-5)), None);
    assert_eq!(audio_length(None), None);
}

#[test]
fn url_extensions() {
    let cases = [
        ("https://x.org/a/photo.jpg", Some("jpg")),
        ("https://x.org/a/photo.JPEG", Some("jpeg")),
        ("https://x.org/a/photo.png?w=100&h=2.5", Some("png")),
        ("https://x.org/a/photo.gif#frag.x", Some("gif")),
        ("https://x.org/a/archive.tar.gz", Some("gz")),
        ("https://x.org/a/photo", None),
        ("https://x.org/v1.2/photo", None),
        ("https://x.org/a/photo.", None),
        ("https://example.com", None),
        ("https://example.com/", None),
        ("https://example.com?x=a.b", None),
        ("photo.webp", Some("webp")),
        ("/local/dir.d/photo", None),
        ("", None),
    ];
    for (url, expected) in cases {
        assert_eq!(url_extension(url).as_deref(), expected, "{url}");
    }
}

#[test]
fn audio_extensions_come_from_alt_files_else_filetype() {
    let alt = json!([{"filetype": "OGG"}, {"filetype": "mp3"}, {"url": "x"}, {"filetype": ""}, {"filetype": 5}, {"filetype": "ogg"}]);
    assert_eq!(
        audio_extensions(Some("wav"), Some(&alt)),
        vec!["ogg", "mp3"]
    );
    assert_eq!(audio_extensions(None, Some(&alt)), vec!["ogg", "mp3"]);
    assert_eq!(
        audio_extensions(Some("WAV"), Some(&json!([{"filetype": ""}]))),
        vec!["wav"]
    );
    assert_eq!(audio_extensions(Some("wav"), None), vec!["wav"]);
    assert_eq!(
        audio_extensions(Some("wav"), Some(&json!({"filetype": "x"}))),
        vec!["wav"]
    );
    assert!(audio_extensions(None, None).is_empty());
    let row = SourceRow {
        filetype: None,
        alt_files: None,
        ..audio_row()
    };
    let doc = to_document(MediaType::Audio, &row).unwrap();
    assert_eq!(
        serde_json::to_value(&doc).unwrap().get("extension"),
        Some(&Value::Null)
    );
}

#[test]
fn bulk_action_is_two_ndjson_lines() {
    let row = image_row();
    let doc = to_document(MediaType::Image, &row).unwrap();
    let mut out = b"previous\n".to_vec();
    write_bulk_action(&doc, &mut out).unwrap();
    let text = std::str::from_utf8(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], "previous");
    assert_eq!(lines[1], r#"{"index":{"_id":"42"}}"#);
    let body: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(body, serde_json::to_value(&doc).unwrap());
    assert!(text.ends_with('\n'));
}

#[test]
fn select_sql_names_only_the_media_tables() {
    let sql = select_sql(MediaType::Audio);
    assert!(sql.contains("FROM \"temp_import_audio\" t"));
    assert!(sql.contains("\"api_deletedaudio\""));
    assert!(sql.contains("\"api_matureaudio\""));
    assert!(sql.contains("t.alt_files"));
    assert!(!sql.contains("image"));
    let sql = select_sql(MediaType::Image);
    assert!(sql.contains("t.width, t.height"));
    assert!(!sql.contains("audio"));
}

fn arb_json_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        any::<i64>().prop_map(|i| json!(i)),
        (-1000.0f64..1000.0).prop_map(|f| json!(f.to_string())),
        Just(Value::Null),
        ".*".prop_map(Value::String),
    ]
}

proptest! {
    #[test]
    fn popularity_is_absent_or_indexable(raw in proptest::option::of(any::<f64>())) {
        if let Some(p) = standardized_popularity(raw) {
            prop_assert!((f32::MIN_POSITIVE..=100.0).contains(&p));
        } else if let Some(r) = raw {
            // Only non-positive, NaN or vanishingly small values are dropped.
            prop_assert!(r.is_nan() || r * 100.0 < f32::MIN_POSITIVE as f64 * 1.0000001);
        }
    }

    #[test]
    fn authority_is_absent_or_indexable(meta in proptest::option::of(arb_json_number()),
                                        provider in proptest::option::of("[a-z]{0,12}")) {
        if let Some(a) = authority_boost(meta.as_ref(), provider.as_deref()) {
            prop_assert!((f32::MIN_POSITIVE..=100.0).contains(&a));
        }
    }

    #[test]
    fn boost_bounds_are_ordered_and_positive(p in proptest::option::of(any::<f64>()),
                                             a in proptest::option::of(arb_json_number())) {
        let popularity = standardized_popularity(p);
        let authority = authority_boost(a.as_ref(), None);
        let (max, min) = boost_bounds(popularity, authority);
        prop_assert!(min <= max);
        prop_assert!(rank_feature(min).is_some() && rank_feature(max).is_some());
        prop_assert!(max == popularity.unwrap_or(1.0) || max == authority.unwrap_or(1.0));
    }

    #[test]
    fn description_is_a_prefix_of_at_most_2000_chars(s in ".{0,2300}") {
        let cut = truncate_description(&s);
        prop_assert!(s.starts_with(cut));
        let n = s.chars().count();
        prop_assert_eq!(cut.chars().count(), n.min(DESCRIPTION_MAX_CHARS));
    }

    #[test]
    fn extension_never_holds_separators(url in "[a-zA-Z0-9:/.?#=&_-]{0,60}") {
        if let Some(ext) = url_extension(&url) {
            prop_assert!(!ext.is_empty());
            prop_assert!(!ext.contains(['/', '?', '#', '.']));
            prop_assert_eq!(ext.to_lowercase(), ext.clone());
            let lower = url.to_lowercase();
            let dotted = format!(".{}", ext);
            prop_assert!(lower.contains(&dotted));
        }
    }

    #[test]
    fn size_grows_with_area(w in 1i32..5000, h in 1i32..5000, dw in 0i32..500, dh in 0i32..500) {
        let rank = |s: Option<&str>| match s { Some("small") => 0, Some("medium") => 1, Some("large") => 2, _ => 99 };
        prop_assert!(rank(image_size(Some(w), Some(h))) <= rank(image_size(Some(w + dw), Some(h + dh))));
        prop_assert_eq!(aspect_ratio(Some(w), Some(h)) == Some("square"), w == h);
        prop_assert_eq!(image_size(Some(w), Some(h)), image_size(Some(h), Some(w)));
    }

    #[test]
    fn length_grows_with_duration(d in 1i32..i32::MAX, extra in 0i32..1_000_000) {
        let rank = |s: Option<&str>| match s { Some("shortest") => 0, Some("short") => 1, Some("medium") => 2, Some("long") => 3, _ => 99 };
        let longer = d.saturating_add(extra);
        prop_assert!(rank(audio_length(Some(d))) <= rank(audio_length(Some(longer))));
    }

    #[test]
    fn skipped_exactly_when_removed_or_deleted(removed in any::<bool>(), deleted in any::<bool>(),
                                                audio in any::<bool>()) {
        let media = if audio { MediaType::Audio } else { MediaType::Image };
        let row = SourceRow { removed_from_source: removed, deleted, ..image_row() };
        prop_assert_eq!(to_document(media, &row).is_none(), removed || deleted);
    }

    #[test]
    fn bulk_pair_round_trips(id in any::<i64>(), title in proptest::option::of(".{0,50}"),
                             license in "[A-Za-z-]{1,10}", pop in proptest::option::of(any::<f64>())) {
        let row = SourceRow { id, title, license: license.clone(), standardized_popularity: pop, ..image_row() };
        let doc = to_document(MediaType::Image, &row).unwrap();
        let mut out = Vec::new();
        write_bulk_action(&doc, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.split_terminator('\n');
        let action: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        prop_assert_eq!(&action["index"]["_id"], &json!(id.to_string()));
        let body: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        prop_assert!(lines.next().is_none());
        prop_assert_eq!(&body["id"], &json!(id));
        prop_assert_eq!(body["license"].as_str().unwrap(), license.to_lowercase());
        match body.get("standardized_popularity") {
            Some(Value::Null) => prop_assert!(doc.standardized_popularity.is_none()),
            Some(p) => {
                let p = p.as_f64().unwrap() as f32;
                prop_assert!((f32::MIN_POSITIVE..=100.0).contains(&p));
            }
            None => prop_assert!(false, "standardized_popularity missing"),
        }
        prop_assert_eq!(keys(&body), sorted(document_fields(MediaType::Image)));
    }

    #[test]
    fn every_document_has_its_media_keys(audio in any::<bool>(), title in proptest::option::of(".{0,8}"),
                                         provider in proptest::option::of("[a-z]{0,8}"),
                                         url in proptest::option::of("[a-z./]{0,12}"),
                                         width in proptest::option::of(-2i32..2000),
                                         duration in proptest::option::of(-2i32..700_000),
                                         pop in proptest::option::of(-1.0f64..2.0)) {
        let media = if audio { MediaType::Audio } else { MediaType::Image };
        let row = SourceRow { title, provider, url, width, height: width, duration,
                              standardized_popularity: pop, filetype: None, ..audio_row() };
        let value = serde_json::to_value(to_document(media, &row).unwrap()).unwrap();
        prop_assert_eq!(keys(&value), sorted(document_fields(media)));
    }

    /// What reaches a document is the tags column after the tag filter (the copy step runs it
    /// in SQL); the document then carries exactly the tags the filter kept, in order, each
    /// with the accuracy the filter judged (a numeric string as its number).
    #[test]
    fn document_tags_are_the_filtered_tags_with_their_accuracies(tags in arb_tags()) {
        let config = TagFilterConfig::default();
        let filtered = config.filter(Some(&tags));
        let kept: &[Value] = match &filtered {
            Some(Value::Array(items)) => items,
            _ => &[],
        };
        let row = SourceRow { tags: filtered.clone(), ..image_row() };
        let doc = to_document(MediaType::Image, &row).unwrap();
        prop_assert_eq!(doc.tags.len(), kept.len());
        for (tag, source) in doc.tags.iter().zip(kept) {
            prop_assert_eq!(Some(tag.name), source["name"].as_str());
            match tag_accuracy(source.get("accuracy")) {
                TagAccuracy::Missing => prop_assert_eq!(tag.accuracy, None),
                TagAccuracy::Number(a) => {
                    prop_assert!(a >= config.min_accuracy);
                    // Beyond the float range the index rejects: left out (see parse_tags).
                    let expected = (a as f32).is_finite().then_some(a);
                    prop_assert_eq!(tag.accuracy, expected);
                }
                TagAccuracy::Invalid => prop_assert!(false, "the filter kept an untrusted accuracy: {}", source),
            }
        }
        // Filtering changes no tag: each kept tag reads the same as from the unfiltered column.
        let unfiltered = parse_tags(Some(&tags));
        for tag in &doc.tags {
            prop_assert!(unfiltered.contains(tag), "{:?}", tag);
        }
    }
}

/// Tag arrays as the catalog holds them: objects with a name (or not), an accuracy as a
/// number, a numeric string, junk or null (or none), and sometimes a provider; plus strays.
fn arb_tags() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        4 => "[a-zA-Z :=-]{0,10}".prop_map(Value::String),
        1 => Just(json!(3)),
        1 => Just(Value::Null),
    ];
    let accuracy = prop_oneof![
        (0.0f64..=1.0).prop_map(|a| json!(a)),
        (0.0f64..=1.0).prop_map(|a| json!(a.to_string())),
        (0.0f64..=1.0).prop_map(|a| json!(format!("{a:e}"))),
        prop_oneof![
            Just("0.95"),
            Just("+.92"),
            Just("9e-1"),
            Just("1e999"),
            Just("high"),
            Just(" 0.95"),
            Just("")
        ]
        .prop_map(|s| json!(s)),
        Just(json!(true)),
        Just(Value::Null),
        Just(json!(2)),
    ];
    let provider = prop_oneof![Just("rekognition"), Just("clarifai")];
    let tag = (
        proptest::option::of(name),
        proptest::option::of(accuracy),
        proptest::option::of(provider),
    )
        .prop_map(|(name, accuracy, provider)| {
            let mut tag = serde_json::Map::new();
            if let Some(n) = name {
                tag.insert("name".into(), n);
            }
            if let Some(a) = accuracy {
                tag.insert("accuracy".into(), a);
            }
            if let Some(p) = provider {
                tag.insert("provider".into(), json!(p));
            }
            Value::Object(tag)
        });
    let item = prop_oneof![8 => tag, 1 => Just(json!("loose")), 1 => Just(Value::Null)];
    proptest::collection::vec(item, 0..8).prop_map(Value::Array)
}
