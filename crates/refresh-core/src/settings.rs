//! The credentials every step reads from one Secrets Manager secret (`REFRESH_SECRET_ID`).
//!
//! Every secret value is a [`SecretString`]: its `Debug` prints `[REDACTED]`, so logging a
//! [`Secrets`] (or an error that wraps one) can never leak a password or token. Reading a
//! value needs an explicit `expose_secret()`, which is easy to spot in review.
//! `Secrets` deliberately implements neither `Serialize` nor `Display`: it cannot end up in
//! a step's output.

use crate::error::StepError;
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::fmt;

pub use secrecy::SecretString;

/// The JSON value of the refresh secret (docs/ARCHITECTURE.md "Secrets and configuration").
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    pub api_db_url: SecretString,
    pub catalog_db_url: SecretString,
    /// May carry basic-auth credentials, so it is a secret too.
    pub es_url: SecretString,
    pub worker_token: SecretString,
    pub catalog_fdw: CatalogFdw,
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
            .field("es_url", &format_args!("{REDACTED}"))
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
        let secrets: Secrets =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
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
        Ok(secrets)
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
