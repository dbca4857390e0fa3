//! What every step may need, built once per cold start: the configuration from the
//! function's environment and the AWS SDK configuration, plus the lookups steps share
//! (the environment's secret, its Elasticsearch cluster and API database, settings).

use refresh_core::config::{vars, ProcessEnv, StepConfig};
use refresh_core::environment::Environment;
use refresh_core::error::{ErrorKind, StepError, StepResult};
use refresh_core::es::SearchClient;
use refresh_core::media::MediaType;
use refresh_core::settings::Secrets;
use refresh_core::tags::TagFilterConfig;
use secrecy::ExposeSecret;

#[derive(Debug)]
pub struct Context {
    pub config: StepConfig,
    pub aws: aws_config::SdkConfig,
}

impl Context {
    pub async fn from_env() -> StepResult<Context> {
        let config = StepConfig::from_env(&ProcessEnv)?;
        let aws = aws_config::load_from_env().await;
        Ok(Context { config, aws })
    }

    /// The credentials of `environment` (`REFRESH_SECRET_ID_<ENV>`, else `REFRESH_SECRET_ID`),
    /// or of the deployment when the input does not say; read on every call so a rotated
    /// secret takes effect without a redeploy.
    pub async fn secrets(&self, environment: Option<Environment>) -> StepResult<Secrets> {
        match environment {
            Some(environment) => {
                refresh_core::secrets::load_secret(
                    &self.aws,
                    self.config.secret_id_for(environment)?,
                )
                .await
            }
            None => {
                let secret_id = self.config.secret_id().map_err(|e| {
                    StepError::new(
                        e.kind,
                        format!(
                            "{} (this step's input carries no params, so it cannot pick the \
                             per-environment secret)",
                            e.message
                        ),
                    )
                })?;
                refresh_core::secrets::load_secret(&self.aws, secret_id).await
            }
        }
    }

    /// An Elasticsearch client for the environment's cluster.
    pub async fn search(&self, environment: Option<Environment>) -> StepResult<SearchClient> {
        SearchClient::from_secrets(&self.secrets(environment).await?)
    }

    pub fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.aws)
    }

    /// The tag filter from `TAG_FILTER_CONFIG`, else the brief's defaults.
    pub fn tag_filter(&self) -> StepResult<TagFilterConfig> {
        match &self.config.tag_filter_config {
            Some(json) => TagFilterConfig::from_json(json),
            None => Ok(TagFilterConfig::default()),
        }
    }

    /// Primary shards of a media's index (`IMAGE_SHARDS` / `AUDIO_SHARDS`).
    pub fn shards(&self, media: MediaType) -> u32 {
        match media {
            MediaType::Image => self.config.search.image_shards,
            MediaType::Audio => self.config.search.audio_shards,
        }
    }

    /// The location of the sensitive-terms list; a filtered index without it would filter
    /// nothing.
    pub fn sensitive_terms_url(&self) -> StepResult<&str> {
        self.config
            .search
            .sensitive_terms_url
            .as_deref()
            .ok_or_else(|| {
                StepError::new(
                    ErrorKind::Configuration,
                    format!(
                        "{} is not set: no sensitive-terms list to build the filtered index with",
                        vars::SENSITIVE_TERMS_URL
                    ),
                )
            })
    }
}

/// A connection to the environment's API database.
pub async fn api_db(secrets: &Secrets) -> StepResult<tokio_postgres::Client> {
    refresh_core::pg::connect::connect(secrets.api_db_url.expose_secret()).await
}
