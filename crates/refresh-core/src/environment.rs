//! The deployment environments a refresh runs in.

use crate::error::{shorten, StepError};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Serialised as its lowercase name. Deserialised from that string only: serde's derive
/// would also take the externally tagged map form (`{"staging": null}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Staging,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = StepError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "staging" => Ok(Environment::Staging),
            "production" => Ok(Environment::Production),
            other => Err(StepError::invalid_input(format!(
                "environment: unknown value {:?}, expected \"staging\" or \"production\"",
                shorten(other)
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Environment {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = Environment;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an environment string, \"staging\" or \"production\"")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Environment, E> {
                match value {
                    "staging" => Ok(Environment::Staging),
                    "production" => Ok(Environment::Production),
                    other => Err(E::unknown_variant(other, &["staging", "production"])),
                }
            }
        }
        deserializer.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deserialises_from_its_name_only() {
        for env in [Environment::Staging, Environment::Production] {
            let value = serde_json::to_value(env).unwrap();
            assert_eq!(value, json!(env.as_str()));
            assert_eq!(serde_json::from_value::<Environment>(value).unwrap(), env);
        }
        for bad in [
            json!({"staging": null}),
            json!({"production": {}}),
            json!(["staging"]),
            json!("Staging"),
            json!("prod"),
            json!(true),
            json!(null),
        ] {
            assert!(
                serde_json::from_value::<Environment>(bad.clone()).is_err(),
                "{bad} must be refused"
            );
        }
    }
}
