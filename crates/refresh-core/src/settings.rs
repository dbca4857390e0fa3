//! The credentials every step reads from one Secrets Manager secret (`REFRESH_SECRET_ID`).
//!
//! Every secret value is a [`SecretString`]: its `Debug` prints `[REDACTED]`, so logging a
//! [`Secrets`] (or an error that wraps one) can never leak a password or token. Reading a
//! value needs an explicit `expose_secret()`, which is easy to spot in review.
//! `Secrets` deliberately implements neither `Serialize` nor `Display`: it cannot end up in
//! a step's output.

use crate::error::StepError;
use crate::es::connection::{EsAuthFields, SearchSettings};
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::fmt;

pub use secrecy::SecretString;

/// The refresh secret (docs/ARCHITECTURE.md "Secrets and configuration"), validated.
#[derive(Clone)]
pub struct Secrets {
    pub api_db_url: SecretString,
    pub catalog_db_url: SecretString,
    /// The cluster from `es_url`, `es_auth` and `es_ca_cert`; the one input of
    /// `SearchClient::from_settings` for the Lambdas and the worker alike.
    pub es: SearchSettings,
    pub worker_token: SecretString,
    pub catalog_fdw: CatalogFdw,
}

/// The secret's JSON as written; [`Secrets::from_json`] validates it into [`Secrets`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecrets {
    api_db_url: SecretString,
    catalog_db_url: SecretString,
    /// May carry basic-auth credentials (`user:password@`), so it is a secret too.
    es_url: SecretString,
    /// Optional: `{username, password}`, `{api_key_id, api_key}` or `{api_key}` (encoded).
    #[serde(default)]
    es_auth: Option<EsAuthFields>,
    /// Optional PEM text: the CA that signed the cluster's certificate (https only).
    #[serde(default)]
    es_ca_cert: Option<String>,
    worker_token: SecretString,
    catalog_fdw: CatalogFdw,
}

/// How the API database's `postgres_fdw` server reaches the catalog (from the API DB's point
/// of view, which may differ from the Lambda's).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFdw {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: SecretString,
}

const REDACTED: &str = "***";

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("api_db_url", &format_args!("{REDACTED}"))
            .field("catalog_db_url", &format_args!("{REDACTED}"))
            .field("es", &self.es)
            .field("worker_token", &format_args!("{REDACTED}"))
            .field("catalog_fdw", &self.catalog_fdw)
            .finish()
    }
}

impl fmt::Debug for CatalogFdw {
    // Host and database name are what operators need to tell connections apart; the user
    // name and password are not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CatalogFdw")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("user", &format_args!("{REDACTED}"))
            .field("password", &format_args!("{REDACTED}"))
            .finish()
    }
}

impl Secrets {
    /// Parses the secret's JSON value. The error names a missing or unknown field but never
    /// echoes any part of the value (serde's own messages quote the offending value).
    pub fn from_json(secret_value: &str) -> Result<Secrets, StepError> {
        let mut deserializer = serde_json::Deserializer::from_str(secret_value);
        let raw: RawSecrets = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let location = if path == "." || path.is_empty() {
                String::new()
            } else {
                format!(" at `{path}`")
            };
            configuration_error(&location, &e.into_inner())
        })?;
        deserializer
            .end()
            .map_err(|e| configuration_error("", &e))?;
        let es = SearchSettings::new(
            raw.es_url.expose_secret(),
            raw.es_auth.as_ref(),
            raw.es_ca_cert.as_deref(),
        )
        .map_err(|e| {
            // The setting error names the field and why, never its value.
            StepError::new(
                crate::error::ErrorKind::Configuration,
                format!("refresh secret at {e}"),
            )
        })?;
        Ok(Secrets {
            api_db_url: raw.api_db_url,
            catalog_db_url: raw.catalog_db_url,
            es,
            worker_token: raw.worker_token,
            catalog_fdw: raw.catalog_fdw,
        })
    }

    /// The worker's bearer token, for an `Authorization` header.
    pub fn worker_token(&self) -> &str {
        self.worker_token.expose_secret()
    }
}

fn configuration_error(location: &str, error: &serde_json::Error) -> StepError {
    let detail = error.to_string();
    let reason = if detail.starts_with("missing field") || detail.starts_with("unknown field") {
        // Field names come from the JSON's keys, not its values.
        detail
            .split(" at line")
            .next()
            .unwrap_or_default()
            .to_string()
    } else if error.is_syntax() || error.is_eof() {
        format!(
            "not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        )
    } else {
        "wrong type or value".to_string()
    };
    StepError::new(
        crate::error::ErrorKind::Configuration,
        format!("refresh secret{location}: {reason}"),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::ErrorKind;

    pub(crate) const SECRET_JSON: &str = r#"{
        "api_db_url": "postgres://api_user:api-pa55word@db.internal:5432/openledger",
        "catalog_db_url": "postgres://cat_user:cat-pa55word@catalog.internal:5432/openledger",
        "es_url": "http://elastic:es-pa55word@es.internal:9200",
        "worker_token": "tok-0123456789abcdef",
        "catalog_fdw": {"host": "catalog.internal", "port": 5433, "dbname": "openledger",
                        "user": "fdw_user", "password": "fdw-pa55word"}
    }"#;

    const SECRET_VALUES: [&str; 9] = [
        "api-pa55word",
        "cat-pa55word",
        "es-pa55word",
        "tok-0123456789abcdef",
        "fdw-pa55word",
        "fdw_user",
        "postgres://api_user",
        "postgres://cat_user",
        "http://elastic",
    ];

    #[test]
    fn parses_the_documented_shape() {
        let secrets = Secrets::from_json(SECRET_JSON).unwrap();
        assert_eq!(secrets.catalog_fdw.port, 5433);
        assert_eq!(secrets.catalog_fdw.host, "catalog.internal");
        assert_eq!(secrets.worker_token(), "tok-0123456789abcdef");
        assert_eq!(secrets.catalog_fdw.password.expose_secret(), "fdw-pa55word");
        assert!(secrets
            .api_db_url
            .expose_secret()
            .starts_with("postgres://api_user:"));
    }

    #[test]
    fn debug_output_contains_no_secret_value() {
        let secrets = Secrets::from_json(SECRET_JSON).unwrap();
        for rendered in [
            format!("{secrets:?}"),
            format!("{secrets:#?}"),
            format!("{:?}", secrets.catalog_fdw),
        ] {
            for value in SECRET_VALUES {
                assert!(
                    !rendered.contains(value),
                    "{value:?} leaked into {rendered}"
                );
            }
            assert!(rendered.contains("***"));
        }
        // Non-secret identification stays visible for operators.
        assert!(format!("{secrets:?}").contains("catalog.internal"));
        // The secrecy wrapper on its own is also redacted.
        assert!(!format!("{:?}", secrets.worker_token).contains("tok-"));
    }

    /// SECRET_JSON with `es_url` replaced and the given extra top-level keys.
    fn secret_with(es_url: &str, extra: serde_json::Value) -> String {
        let mut value: serde_json::Value = serde_json::from_str(SECRET_JSON).unwrap();
        value["es_url"] = es_url.into();
        for (key, field) in extra.as_object().unwrap() {
            value[key] = field.clone();
        }
        value.to_string()
    }

    /// A PEM block the parser accepts (a DER SEQUENCE); real certificates are exercised by
    /// tests/es_tls.rs.
    const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";

    #[test]
    fn elasticsearch_auth_and_ca_are_optional_and_parsed() {
        let secrets = Secrets::from_json(SECRET_JSON).unwrap();
        assert_eq!(secrets.es.endpoint(), "es.internal:9200");
        // Credentials in es_url still become basic auth.
        assert_eq!(secrets.es.auth().map(|a| a.kind()), Some("basic"));
        assert!(secrets.es.ca_cert().is_none());

        let encoded = "aWQtMTprZXktc2VjcmV0LTE="; // base64("id-1:key-secret-1")
        let json = secret_with(
            "https://es.internal:9243",
            serde_json::json!({"es_auth": {"api_key": encoded}, "es_ca_cert": CA_PEM}),
        );
        let secrets = Secrets::from_json(&json).unwrap();
        assert_eq!(secrets.es.auth().map(|a| a.kind()), Some("encoded api key"));
        assert_eq!(secrets.es.ca_cert().map(|c| c.len()), Some(1));
        assert_eq!(
            secrets.es.to_string(),
            "https://es.internal:9243 (encoded api key, custom CA)"
        );
        for rendered in [format!("{secrets:?}"), format!("{secrets:#?}")] {
            for value in [encoded, "key-secret-1", "MAMCAQE"] {
                assert!(
                    !rendered.contains(value),
                    "{value:?} leaked into {rendered}"
                );
            }
        }

        let json = secret_with(
            "https://es.internal:9243",
            serde_json::json!({"es_auth": {"api_key_id": "id-2", "api_key": "key-secret-2"},
                               "es_ca_cert": null}),
        );
        let secrets = Secrets::from_json(&json).unwrap();
        assert_eq!(secrets.es.auth().map(|a| a.kind()), Some("api key"));
        assert!(!format!("{secrets:?}").contains("key-secret-2"));
        assert!(!format!("{secrets:?}").contains("id-2"));

        let json = secret_with(
            "https://es.internal:9243",
            serde_json::json!({"es_auth": {"username": "refresh", "password": "es-pa55word"}}),
        );
        let secrets = Secrets::from_json(&json).unwrap();
        assert_eq!(secrets.es.auth().map(|a| a.kind()), Some("basic"));
        assert!(!format!("{secrets:?}").contains("es-pa55word"));
    }

    #[test]
    fn bad_elasticsearch_fields_are_refused_naming_the_field() {
        let cases = [
            (
                "https://es.internal:9243",
                serde_json::json!({"es_auth": {"apikey": "hunter2-key"}}),
                "`es_auth.apikey`: unknown field `apikey`",
            ),
            (
                "https://es.internal:9243",
                serde_json::json!({"es_auth": {"username": "u", "password": "hunter2-pw",
                                               "api_key": "hunter2-key"}}),
                "`es_auth`: mixes basic auth",
            ),
            (
                "https://es.internal:9243",
                serde_json::json!({"es_auth": {"api_key": "hunter2-key"}}),
                "`es_auth.api_key`: alone must be the encoded API key",
            ),
            (
                "https://es.internal:9243",
                serde_json::json!({"es_auth": {"username": "u"}}),
                "`es_auth.password`: is missing",
            ),
            (
                "https://es.internal:9243",
                serde_json::json!({"es_auth": {"username": 7, "password": "hunter2-pw"}}),
                "`es_auth.username`: wrong type or value",
            ),
            (
                "https://elastic:hunter2-pw@es.internal:9243",
                serde_json::json!({"es_auth": {"username": "u", "password": "hunter2-pw"}}),
                "`es_auth`: es_url carries credentials",
            ),
            (
                "https://es.internal:9243",
                serde_json::json!({"es_ca_cert": "-----BEGIN PRIVATE KEY-----\naHVudGVyMg==\n-----END PRIVATE KEY-----"}),
                "`es_ca_cert`: holds a private key",
            ),
            (
                "http://es.internal:9200",
                serde_json::json!({"es_ca_cert": CA_PEM}),
                "`es_ca_cert`: is set but es_url is not https://",
            ),
            (
                "https://es.internal:9243",
                serde_json::json!({"es_ca_cert": ["hunter2"]}),
                "`es_ca_cert`: wrong type or value",
            ),
            (
                "elastic:hunter2-pw@es.internal",
                serde_json::json!({}),
                "`es_url`: must start with http:// or https://",
            ),
            ("", serde_json::json!({}), "`es_url`: is not a valid URL"),
            (
                "https://es.internal:9243",
                serde_json::json!({"es_tls": {"ca": "x"}}),
                "unknown field `es_tls`",
            ),
        ];
        for (url, extra, expected) in cases {
            let err = Secrets::from_json(&secret_with(url, extra.clone())).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Configuration, "{extra}");
            assert!(
                err.message.starts_with("refresh secret at "),
                "{extra}: {}",
                err.message
            );
            assert!(err.message.contains(expected), "{extra}: {}", err.message);
            for value in ["hunter2", "aHVudGVyMg"] {
                assert!(!err.message.contains(value), "{extra}: {}", err.message);
            }
        }
    }

    #[test]
    fn parse_errors_name_the_field_but_never_a_value() {
        let missing =
            Secrets::from_json(r#"{"api_db_url": "postgres://u:hunter2@h/db"}"#).unwrap_err();
        assert_eq!(missing.kind, ErrorKind::Configuration);
        assert!(
            missing.message.contains("catalog_db_url"),
            "{}",
            missing.message
        );
        assert!(!missing.message.contains("hunter2"));

        let wrong_type = SECRET_JSON.replace("5433", "\"hunter2-port\"");
        let err = Secrets::from_json(&wrong_type).unwrap_err();
        assert!(err.message.contains("catalog_fdw.port"), "{}", err.message);
        assert!(!err.message.contains("hunter2"), "{}", err.message);

        let unknown = SECRET_JSON.replace("\"worker_token\"", "\"workr_token\"");
        let err = Secrets::from_json(&unknown).unwrap_err();
        assert!(err.message.contains("workr_token"), "{}", err.message);
        assert!(
            !err.message.contains("tok-0123456789abcdef"),
            "{}",
            err.message
        );

        let broken =
            Secrets::from_json("{\"api_db_url\": \"postgres://u:hunter2@h/db").unwrap_err();
        assert!(
            broken.message.contains("not valid JSON"),
            "{}",
            broken.message
        );
        assert!(!broken.message.contains("hunter2"));
    }
}
