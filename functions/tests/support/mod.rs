//! What the definition tests share: reading `statemachine/*.asl.json` and applying their
//! plain-path templates (`Parameters`, `ResultSelector`) to sample data.

#![allow(dead_code)] // each test binary uses a different part

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("functions/ has a parent")
        .to_path_buf()
}

/// A generated definition, `${…}` placeholders left as they are.
pub fn load(file: &str) -> Value {
    let path = root().join("statemachine").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every state by name, including the Map's item processor.
pub fn all_states(definition: &Value) -> BTreeMap<String, Value> {
    fn walk(states: &Map<String, Value>, found: &mut BTreeMap<String, Value>) {
        for (name, state) in states {
            found.insert(name.clone(), state.clone());
            if let Some(inner) = state["ItemProcessor"]["States"].as_object() {
                walk(inner, found);
            }
        }
    }
    let mut found = BTreeMap::new();
    walk(
        definition["States"].as_object().expect("States"),
        &mut found,
    );
    found
}

/// `$.a.b` of `value` (plain dotted paths only; `Value::Null` when absent).
pub fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.trim_start_matches("$.")
        .split('.')
        .fold(value, |value, key| &value[key])
}

/// A `Parameters` / `ResultSelector` template applied to `input`, for templates of plain paths
/// and literals (an intrinsic function panics: this is not an ASL engine).
pub fn apply(template: &Value, input: &Value) -> Value {
    match template {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| match key.strip_suffix(".$") {
                    Some(key) => {
                        let path = value.as_str().expect("a path");
                        assert!(
                            path == "$" || path.starts_with("$."),
                            "not a plain path: {path}"
                        );
                        let found = if path == "$" { input } else { at(input, path) };
                        (key.to_string(), found.clone())
                    }
                    None => (key.clone(), apply(value, input)),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}
