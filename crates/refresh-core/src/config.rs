//! Non-secret configuration from function environment variables, with the brief's defaults.
//!
//! Everything reads through [`EnvSource`], so tests pass a `HashMap` instead of touching the
//! process environment. A variable that is present but malformed is a `ConfigurationError`
//! naming the variable; an absent one takes its default.

use crate::environment::Environment;
use crate::error::{ErrorKind, StepError};
use crate::guard::SearchGuardConfig;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::str::FromStr;

/// Where configuration comes from: the process environment in a Lambda, a map in tests.
pub trait EnvSource {
    fn var(&self, name: &str) -> Option<String>;
}

impl<S: BuildHasher> EnvSource for HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl<S: BuildHasher> EnvSource for HashMap<&str, &str, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.to_string())
    }
}

/// The process environment. Variables that are not valid UTF-8 count as absent.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Variable names, as the template sets them.
pub mod vars {
    pub const REFRESH_SECRET_ID: &str = "REFRESH_SECRET_ID";
    pub const REFRESH_SECRET_ID_STAGING: &str = "REFRESH_SECRET_ID_STAGING";
    pub const REFRESH_SECRET_ID_PRODUCTION: &str = "REFRESH_SECRET_ID_PRODUCTION";
    pub const REFRESH_ENVIRONMENT: &str = "REFRESH_ENVIRONMENT";
    pub const WORKERS_STAGING: &str = "WORKERS_STAGING";
    pub const WORKERS_PRODUCTION: &str = "WORKERS_PRODUCTION";
    pub const LAUNCH_TEMPLATE_STAGING: &str = "LAUNCH_TEMPLATE_STAGING";
    pub const LAUNCH_TEMPLATE_PRODUCTION: &str = "LAUNCH_TEMPLATE_PRODUCTION";
    pub const ROW_LIMIT_NON_PRODUCTION: &str = "ROW_LIMIT_NON_PRODUCTION";
    pub const MAX_RECORD_DROP_PCT: &str = "MAX_RECORD_DROP_PCT";
    pub const TAG_FILTER_CONFIG: &str = "TAG_FILTER_CONFIG";
    pub const SENSITIVE_TERMS_URL: &str = "SENSITIVE_TERMS_URL";
    pub const SEARCH_GUARD_CONFIG: &str = "SEARCH_GUARD_CONFIG";
    pub const REINDEX_THROTTLE_RPS: &str = "REINDEX_THROTTLE_RPS";
    pub const SERVING_REPLICAS: &str = "SERVING_REPLICAS";
    pub const SERVING_REFRESH_INTERVAL: &str = "SERVING_REFRESH_INTERVAL";
    pub const IMAGE_SHARDS: &str = "IMAGE_SHARDS";
    pub const AUDIO_SHARDS: &str = "AUDIO_SHARDS";
    pub const WORKER_PORT: &str = "WORKER_PORT";
    /// Database sessions (and key lanes) of the copy step.
    pub const COPY_SESSIONS: &str = "COPY_SESSIONS";
    /// The forward_notification function's secret holding the chat webhook URL.
    pub const CHAT_WEBHOOK_SECRET_ID: &str = "CHAT_WEBHOOK_SECRET_ID";
}

pub const DEFAULT_WORKERS_STAGING: u32 = 2;
pub const DEFAULT_WORKERS_PRODUCTION: u32 = 6;
pub const DEFAULT_ROW_LIMIT_NON_PRODUCTION: u64 = 100_000;
pub const DEFAULT_MAX_RECORD_DROP_PCT: f64 = 10.0;
pub const DEFAULT_REINDEX_THROTTLE_RPS: u32 = 20_000;
pub const DEFAULT_SERVING_REPLICAS: u32 = 1;
pub const DEFAULT_SERVING_REFRESH_INTERVAL: &str = "1s";
pub const DEFAULT_IMAGE_SHARDS: u32 = 18;
pub const DEFAULT_AUDIO_SHARDS: u32 = 1;
pub const DEFAULT_WORKER_PORT: u16 = 8003;
/// More reindex workers than this is a typo, not a plan.
pub const MAX_WORKERS: u32 = 64;

/// What `validate_input` fills in when the execution input leaves a value out.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshDefaults {
    pub workers_staging: u32,
    pub workers_production: u32,
    pub launch_template_staging: Option<String>,
    pub launch_template_production: Option<String>,
    pub row_limit_non_production: u64,
    pub max_record_drop_pct: f64,
    /// When set, this deployment serves only that environment and refuses executions for
    /// the other one (so a staging run can never use production's connection).
    pub deployment_environment: Option<Environment>,
}

impl Default for RefreshDefaults {
    fn default() -> Self {
        RefreshDefaults {
            workers_staging: DEFAULT_WORKERS_STAGING,
            workers_production: DEFAULT_WORKERS_PRODUCTION,
            launch_template_staging: None,
            launch_template_production: None,
            row_limit_non_production: DEFAULT_ROW_LIMIT_NON_PRODUCTION,
            max_record_drop_pct: DEFAULT_MAX_RECORD_DROP_PCT,
            deployment_environment: None,
        }
    }
}

impl RefreshDefaults {
    pub fn from_env(env: &impl EnvSource) -> Result<Self, StepError> {
        let max_record_drop_pct: f64 =
            parse_or(env, vars::MAX_RECORD_DROP_PCT, DEFAULT_MAX_RECORD_DROP_PCT)?;
        if !(0.0..=100.0).contains(&max_record_drop_pct) {
            return Err(bad_value(
                vars::MAX_RECORD_DROP_PCT,
                "must be a percentage between 0 and 100",
            ));
        }
        Ok(RefreshDefaults {
            workers_staging: workers(env, vars::WORKERS_STAGING, DEFAULT_WORKERS_STAGING)?,
            workers_production: workers(env, vars::WORKERS_PRODUCTION, DEFAULT_WORKERS_PRODUCTION)?,
            launch_template_staging: non_empty(env, vars::LAUNCH_TEMPLATE_STAGING),
            launch_template_production: non_empty(env, vars::LAUNCH_TEMPLATE_PRODUCTION),
            row_limit_non_production: positive(
                env,
                vars::ROW_LIMIT_NON_PRODUCTION,
                DEFAULT_ROW_LIMIT_NON_PRODUCTION,
            )?,
            max_record_drop_pct,
            deployment_environment: match non_empty(env, vars::REFRESH_ENVIRONMENT) {
                None => None,
                Some(v) => Some(Environment::from_str(&v).map_err(|_| {
                    bad_value(
                        vars::REFRESH_ENVIRONMENT,
                        "must be \"staging\" or \"production\"",
                    )
                })?),
            },
        })
    }

    pub fn worker_count(&self, environment: Environment) -> u32 {
        match environment {
            Environment::Staging => self.workers_staging,
            Environment::Production => self.workers_production,
        }
    }

    /// The launch template for the environment's workers; missing is a configuration error.
    pub fn launch_template(&self, environment: Environment) -> Result<&str, StepError> {
        let (value, var) = match environment {
            Environment::Staging => (&self.launch_template_staging, vars::LAUNCH_TEMPLATE_STAGING),
            Environment::Production => (
                &self.launch_template_production,
                vars::LAUNCH_TEMPLATE_PRODUCTION,
            ),
        };
        value.as_deref().ok_or_else(|| {
            StepError::new(
                ErrorKind::Configuration,
                format!("{var} is not set: no launch template for {environment} workers"),
            )
        })
    }
}

/// Elasticsearch settings applied when an index goes live, and index sizing.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchConfig {
    pub serving_replicas: u32,
    pub serving_refresh_interval: String,
    pub image_shards: u32,
    pub audio_shards: u32,
    pub reindex_throttle_rps: u32,
    /// File path, `s3://` or `http(s)://` location of the sensitive-terms list.
    pub sensitive_terms_url: Option<String>,
    /// `SEARCH_GUARD_CONFIG` (JSON), or the built-in set when absent.
    pub search_guard: SearchGuardConfig,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            serving_replicas: DEFAULT_SERVING_REPLICAS,
            serving_refresh_interval: DEFAULT_SERVING_REFRESH_INTERVAL.to_string(),
            image_shards: DEFAULT_IMAGE_SHARDS,
            audio_shards: DEFAULT_AUDIO_SHARDS,
            reindex_throttle_rps: DEFAULT_REINDEX_THROTTLE_RPS,
            sensitive_terms_url: None,
            search_guard: SearchGuardConfig::builtin()
                .expect("the built-in search guard configuration is tested to parse"),
        }
    }
}

impl SearchConfig {
    pub fn from_env(env: &impl EnvSource) -> Result<Self, StepError> {
        let serving_refresh_interval = non_empty(env, vars::SERVING_REFRESH_INTERVAL)
            .unwrap_or_else(|| DEFAULT_SERVING_REFRESH_INTERVAL.into());
        if !is_es_time_value(&serving_refresh_interval) {
            return Err(bad_value(
                vars::SERVING_REFRESH_INTERVAL,
                "must be an Elasticsearch time value such as \"1s\", \"500ms\" or \"-1\"",
            ));
        }
        Ok(SearchConfig {
            serving_replicas: parse_or(env, vars::SERVING_REPLICAS, DEFAULT_SERVING_REPLICAS)?,
            serving_refresh_interval,
            image_shards: positive(env, vars::IMAGE_SHARDS, DEFAULT_IMAGE_SHARDS)?,
            audio_shards: positive(env, vars::AUDIO_SHARDS, DEFAULT_AUDIO_SHARDS)?,
            reindex_throttle_rps: positive(
                env,
                vars::REINDEX_THROTTLE_RPS,
                DEFAULT_REINDEX_THROTTLE_RPS,
            )?,
            sensitive_terms_url: non_empty(env, vars::SENSITIVE_TERMS_URL),
            search_guard: match non_empty(env, vars::SEARCH_GUARD_CONFIG) {
                Some(text) => SearchGuardConfig::parse(&text),
                None => SearchGuardConfig::builtin(),
            }
            .map_err(|e| {
                bad_value(
                    vars::SEARCH_GUARD_CONFIG,
                    &format!("is invalid: {}", e.message),
                )
            })?,
        })
    }
}

/// Everything a step may need, read once at cold start.
#[derive(Debug, Clone, PartialEq)]
pub struct StepConfig {
    pub defaults: RefreshDefaults,
    pub search: SearchConfig,
    /// `REFRESH_SECRET_ID`: the secret for this deployment.
    pub secret_id: Option<String>,
    /// `REFRESH_SECRET_ID_STAGING` / `_PRODUCTION`: per-environment secrets, for a deployment
    /// that serves both environments. They take precedence over `secret_id`.
    pub secret_id_staging: Option<String>,
    pub secret_id_production: Option<String>,
    /// Raw JSON of the tag filter configuration; absent means the brief's defaults.
    pub tag_filter_config: Option<String>,
    pub worker_port: u16,
    /// `COPY_SESSIONS`: sessions the copy step spreads a new copy over.
    pub copy_sessions: usize,
    /// `CHAT_WEBHOOK_SECRET_ID`: the secret holding the chat webhook URL (forward_notification
    /// only; the URL is read from it on every invocation, never from the environment).
    pub chat_webhook_secret_id: Option<String>,
}

impl StepConfig {
    pub fn from_env(env: &impl EnvSource) -> Result<Self, StepError> {
        Ok(StepConfig {
            defaults: RefreshDefaults::from_env(env)?,
            search: SearchConfig::from_env(env)?,
            secret_id: non_empty(env, vars::REFRESH_SECRET_ID),
            secret_id_staging: non_empty(env, vars::REFRESH_SECRET_ID_STAGING),
            secret_id_production: non_empty(env, vars::REFRESH_SECRET_ID_PRODUCTION),
            tag_filter_config: non_empty(env, vars::TAG_FILTER_CONFIG),
            worker_port: positive(env, vars::WORKER_PORT, DEFAULT_WORKER_PORT)?,
            copy_sessions: copy_sessions(env)?,
            chat_webhook_secret_id: non_empty(env, vars::CHAT_WEBHOOK_SECRET_ID),
        })
    }

    /// The secret holding the given environment's credentials. A per-environment variable
    /// wins; the shared `REFRESH_SECRET_ID` is only used when the deployment is not pinned to
    /// the other environment, so staging can never be handed production's connection.
    pub fn secret_id_for(&self, environment: Environment) -> Result<&str, StepError> {
        let specific = match environment {
            Environment::Staging => &self.secret_id_staging,
            Environment::Production => &self.secret_id_production,
        };
        if let Some(id) = specific {
            return Ok(id);
        }
        match (&self.secret_id, self.defaults.deployment_environment) {
            (Some(_), Some(pinned)) if pinned != environment => Err(StepError::new(
                ErrorKind::Configuration,
                format!(
                    "this deployment serves {pinned} ({}), not {environment}",
                    vars::REFRESH_ENVIRONMENT
                ),
            )),
            (Some(id), _) => Ok(id),
            (None, _) => Err(StepError::new(
                ErrorKind::Configuration,
                format!(
                    "{} is not set: no secret to read {environment} credentials from",
                    vars::REFRESH_SECRET_ID
                ),
            )),
        }
    }

    /// The secret of a deployment that does not act per environment (the worker, cleanup).
    pub fn secret_id(&self) -> Result<&str, StepError> {
        self.secret_id.as_deref().ok_or_else(|| {
            StepError::new(
                ErrorKind::Configuration,
                format!("{} is not set", vars::REFRESH_SECRET_ID),
            )
        })
    }
}

fn non_empty(env: &impl EnvSource, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn bad_value(name: &str, why: &str) -> StepError {
    StepError::new(
        ErrorKind::Configuration,
        format!("environment variable {name} {why}"),
    )
}

fn parse_or<T: FromStr>(env: &impl EnvSource, name: &str, default: T) -> Result<T, StepError> {
    match non_empty(env, name) {
        None => Ok(default),
        Some(raw) => raw.parse().map_err(|_| {
            let shown: String = raw.chars().take(40).collect();
            bad_value(
                name,
                &format!(
                    "has an invalid value {shown:?} (expected a {})",
                    short_type::<T>()
                ),
            )
        }),
    }
}

fn positive<T: FromStr + PartialOrd + Default>(
    env: &impl EnvSource,
    name: &str,
    default: T,
) -> Result<T, StepError> {
    let value = parse_or(env, name, default)?;
    if value <= T::default() {
        return Err(bad_value(name, "must be at least 1"));
    }
    Ok(value)
}

fn workers(env: &impl EnvSource, name: &str, default: u32) -> Result<u32, StepError> {
    let value = positive(env, name, default)?;
    if value > MAX_WORKERS {
        return Err(bad_value(name, &format!("must be at most {MAX_WORKERS}")));
    }
    Ok(value)
}

fn copy_sessions(env: &impl EnvSource) -> Result<usize, StepError> {
    use crate::pg::copy::{DEFAULT_SESSIONS, MAX_SESSIONS};
    let value = positive(env, vars::COPY_SESSIONS, DEFAULT_SESSIONS)?;
    if value > MAX_SESSIONS {
        return Err(bad_value(
            vars::COPY_SESSIONS,
            &format!("must be at most {MAX_SESSIONS}"),
        ));
    }
    Ok(value)
}

fn short_type<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    match full {
        "f64" | "f32" => "number",
        "u16" | "u32" | "u64" => "non-negative integer",
        _ => full.rsplit("::").next().unwrap_or(full),
    }
}

/// `-1` (disabled) or a positive integer with an Elasticsearch time unit.
fn is_es_time_value(value: &str) -> bool {
    if value == "-1" {
        return true;
    }
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits_end);
    !number.is_empty() && matches!(unit, "nanos" | "micros" | "ms" | "s" | "m" | "h" | "d")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn the_chat_webhook_secret_id_is_optional() {
        let config = StepConfig::from_env(&env(&[])).unwrap();
        assert_eq!(config.chat_webhook_secret_id, None);
        let config =
            StepConfig::from_env(&env(&[(vars::CHAT_WEBHOOK_SECRET_ID, " arn:secret:chat ")]))
                .unwrap();
        assert_eq!(
            config.chat_webhook_secret_id.as_deref(),
            Some("arn:secret:chat")
        );
        let config = StepConfig::from_env(&env(&[(vars::CHAT_WEBHOOK_SECRET_ID, "")])).unwrap();
        assert_eq!(config.chat_webhook_secret_id, None);
    }

    #[test]
    fn defaults_match_the_brief() {
        let config = StepConfig::from_env(&env(&[])).unwrap();
        assert_eq!(config.defaults.workers_staging, 2);
        assert_eq!(config.defaults.workers_production, 6);
        assert_eq!(config.defaults.max_record_drop_pct, 10.0);
        assert_eq!(config.defaults.row_limit_non_production, 100_000);
        assert_eq!(config.search.reindex_throttle_rps, 20_000);
        assert_eq!(config.search.image_shards, 18);
        assert_eq!(config.search.audio_shards, 1);
        assert_eq!(config.worker_port, 8003);
        assert_eq!(config.copy_sessions, 4);
        assert_eq!(config.defaults, RefreshDefaults::default());
        assert_eq!(config.search, SearchConfig::default());
    }

    #[test]
    fn reads_every_variable() {
        let config = StepConfig::from_env(&env(&[
            ("WORKERS_STAGING", "1"),
            ("WORKERS_PRODUCTION", "12"),
            ("LAUNCH_TEMPLATE_STAGING", "lt-staging"),
            ("LAUNCH_TEMPLATE_PRODUCTION", " lt-prod "),
            ("ROW_LIMIT_NON_PRODUCTION", "500"),
            ("MAX_RECORD_DROP_PCT", "2.5"),
            ("SERVING_REPLICAS", "0"),
            ("SERVING_REFRESH_INTERVAL", "30s"),
            ("IMAGE_SHARDS", "3"),
            ("AUDIO_SHARDS", "2"),
            ("REINDEX_THROTTLE_RPS", "100"),
            ("SENSITIVE_TERMS_URL", "s3://bucket/terms.txt"),
            ("TAG_FILTER_CONFIG", "{}"),
            ("WORKER_PORT", "9000"),
            ("COPY_SESSIONS", "8"),
            ("REFRESH_SECRET_ID", "refresh"),
        ]))
        .unwrap();
        assert_eq!(config.copy_sessions, 8);
        assert_eq!(config.defaults.worker_count(Environment::Staging), 1);
        assert_eq!(config.defaults.worker_count(Environment::Production), 12);
        assert_eq!(
            config
                .defaults
                .launch_template(Environment::Production)
                .unwrap(),
            "lt-prod"
        );
        assert_eq!(config.defaults.row_limit_non_production, 500);
        assert_eq!(config.defaults.max_record_drop_pct, 2.5);
        assert_eq!(config.search.serving_replicas, 0);
        assert_eq!(config.search.serving_refresh_interval, "30s");
        assert_eq!(config.search.image_shards, 3);
        assert_eq!(
            config.search.sensitive_terms_url.as_deref(),
            Some("s3://bucket/terms.txt")
        );
        assert_eq!(config.tag_filter_config.as_deref(), Some("{}"));
        assert_eq!(config.worker_port, 9000);
        assert_eq!(
            config.secret_id_for(Environment::Staging).unwrap(),
            "refresh"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (name, value) in [
            ("WORKERS_STAGING", "two"),
            ("WORKERS_STAGING", "0"),
            ("WORKERS_PRODUCTION", "-6"),
            ("WORKERS_PRODUCTION", "1000"),
            ("ROW_LIMIT_NON_PRODUCTION", "0"),
            ("MAX_RECORD_DROP_PCT", "150"),
            ("MAX_RECORD_DROP_PCT", "ten"),
            ("SEARCH_GUARD_CONFIG", "{}"),
            ("SEARCH_GUARD_CONFIG", r#"{"min_ratio": 2, "queries": []}"#),
            ("SERVING_REFRESH_INTERVAL", "soon"),
            ("IMAGE_SHARDS", "0"),
            ("WORKER_PORT", "70000"),
            ("REFRESH_ENVIRONMENT", "prod"),
        ] {
            let err = StepConfig::from_env(&env(&[(name, value)])).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Configuration, "{name}={value}");
            assert!(
                err.message.contains(name),
                "{name}={value}: {}",
                err.message
            );
        }
    }

    #[test]
    fn missing_launch_template_is_a_configuration_error() {
        let defaults =
            RefreshDefaults::from_env(&env(&[("LAUNCH_TEMPLATE_STAGING", "lt-s")])).unwrap();
        assert_eq!(
            defaults.launch_template(Environment::Staging).unwrap(),
            "lt-s"
        );
        let err = defaults
            .launch_template(Environment::Production)
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Configuration);
        assert!(err.message.contains("LAUNCH_TEMPLATE_PRODUCTION"));
    }

    #[test]
    fn staging_never_falls_back_to_a_production_pinned_secret() {
        let pinned = StepConfig::from_env(&env(&[
            ("REFRESH_SECRET_ID", "prod-secret"),
            ("REFRESH_ENVIRONMENT", "production"),
        ]))
        .unwrap();
        assert_eq!(
            pinned.secret_id_for(Environment::Production).unwrap(),
            "prod-secret"
        );
        let err = pinned.secret_id_for(Environment::Staging).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Configuration);

        let both = StepConfig::from_env(&env(&[
            ("REFRESH_SECRET_ID_STAGING", "s"),
            ("REFRESH_SECRET_ID_PRODUCTION", "p"),
        ]))
        .unwrap();
        assert_eq!(both.secret_id_for(Environment::Staging).unwrap(), "s");
        assert_eq!(both.secret_id_for(Environment::Production).unwrap(), "p");
        assert!(both.secret_id().is_err());
    }

    #[test]
    fn copy_sessions_out_of_range_are_named() {
        for bad in ["0", "17", "four"] {
            let err = StepConfig::from_env(&env(&[(vars::COPY_SESSIONS, bad)])).unwrap_err();
            assert!(err.to_string().contains("COPY_SESSIONS"), "{bad}: {err}");
        }
        let one = StepConfig::from_env(&env(&[(vars::COPY_SESSIONS, "1")])).unwrap();
        assert_eq!(one.copy_sessions, 1);
    }
}
