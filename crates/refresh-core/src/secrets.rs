//! Reading the refresh secret (docs/ARCHITECTURE.md "Secrets and configuration") from
//! Secrets Manager: the one loader the Lambda functions and the indexer worker share.
//!
//! Errors name the secret id, never its value: the SDK's error text describes the request
//! and the failure, and [`Secrets::from_json`] reports fields, not values.

use crate::error::{ErrorKind, StepError, StepResult};
use crate::settings::Secrets;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// Reads the secret `secret_id` and parses it as the refresh secret.
///
/// A missing secret, a denied read or a value that is not the refresh secret's JSON is a
/// `ConfigurationError` (an operator must act); anything else (throttling, a network blip) is
/// an `InternalError` carrying the SDK's reason.
pub async fn load_secret(aws: &aws_config::SdkConfig, secret_id: &str) -> StepResult<Secrets> {
    let client = aws_sdk_secretsmanager::Client::new(aws);
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| secret_read_error(secret_id, &e))?;
    parse_secret(secret_id, output.secret_string())
}

/// Reads the string value of any secret (the chat webhook's), kept secret: errors name the
/// secret id, as [`load_secret`]'s do.
pub async fn load_secret_string(
    aws: &aws_config::SdkConfig,
    secret_id: &str,
) -> StepResult<secrecy::SecretString> {
    let client = aws_sdk_secretsmanager::Client::new(aws);
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| secret_read_error(secret_id, &e))?;
    output
        .secret_string()
        .map(|value| secrecy::SecretString::from(value.to_string()))
        .ok_or_else(|| {
            StepError::new(
                ErrorKind::Configuration,
                format!("secret {secret_id} has no string value"),
            )
        })
}

/// Parses a secret's string value (`None`: the secret has only a binary value).
pub fn parse_secret(secret_id: &str, value: Option<&str>) -> StepResult<Secrets> {
    let value = value.ok_or_else(|| {
        StepError::new(
            ErrorKind::Configuration,
            format!("secret {secret_id} has no string value"),
        )
    })?;
    Secrets::from_json(value)
        .map_err(|e| StepError::new(e.kind, format!("secret {secret_id}: {}", e.message)))
}

/// The step error for a failed `GetSecretValue` call.
pub fn secret_read_error<E, R>(secret_id: &str, error: &SdkError<E, R>) -> StepError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    // A missing secret or a denied read needs an operator; anything else (throttling, a
    // network blip) is reported as internal so the message carries the SDK's reason.
    let kind = match error {
        SdkError::ServiceError(service) => match service.err().code() {
            Some(
                "ResourceNotFoundException"
                | "AccessDeniedException"
                | "DecryptionFailure"
                | "InvalidRequestException",
            ) => ErrorKind::Configuration,
            _ => ErrorKind::Internal,
        },
        _ => ErrorKind::Internal,
    };
    // The SDK's error text describes the request and the failure, never the secret's value.
    StepError::new(
        kind,
        format!(
            "could not read secret {secret_id}: {}",
            DisplayErrorContext(error)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::error::ErrorMetadata;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
    use aws_sdk_secretsmanager::types::error::{InternalServiceError, ResourceNotFoundException};

    use crate::settings::tests::SECRET_JSON;

    fn service_error(error: GetSecretValueError) -> SdkError<GetSecretValueError, ()> {
        SdkError::service_error(error, ())
    }

    #[test]
    fn a_missing_secret_is_a_configuration_error_naming_the_id() {
        let missing = ResourceNotFoundException::builder()
            .message("Secrets Manager can't find the specified secret.")
            .meta(
                ErrorMetadata::builder()
                    .code("ResourceNotFoundException")
                    .build(),
            )
            .build();
        let err = secret_read_error(
            "refresh/staging",
            &service_error(GetSecretValueError::ResourceNotFoundException(missing)),
        );
        assert_eq!(err.kind, ErrorKind::Configuration);
        assert!(
            err.message
                .starts_with("could not read secret refresh/staging: "),
            "{}",
            err.message
        );
    }

    #[test]
    fn other_failures_are_internal() {
        let internal = InternalServiceError::builder()
            .meta(
                ErrorMetadata::builder()
                    .code("InternalServiceError")
                    .build(),
            )
            .build();
        let err = secret_read_error(
            "refresh/production",
            &service_error(GetSecretValueError::InternalServiceError(internal)),
        );
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(
            err.message.contains("refresh/production"),
            "{}",
            err.message
        );

        let timeout: SdkError<GetSecretValueError, ()> = SdkError::timeout_error("took too long");
        assert_eq!(secret_read_error("x", &timeout).kind, ErrorKind::Internal);
    }

    #[test]
    fn values_are_parsed_and_never_echoed() {
        let secrets = parse_secret("refresh/staging", Some(SECRET_JSON)).unwrap();
        assert_eq!(secrets.worker_token(), "tok-0123456789abcdef");

        let err = parse_secret("refresh/staging", None).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Configuration);
        assert_eq!(err.message, "secret refresh/staging has no string value");

        let broken = SECRET_JSON.replace("\"worker_token\"", "\"workr_token\"");
        let err = parse_secret("refresh/staging", Some(&broken)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Configuration);
        assert!(
            err.message.starts_with("secret refresh/staging: "),
            "{}",
            err.message
        );
        for value in ["pa55word", "tok-0123456789", "postgres://", "elastic:"] {
            assert!(!err.message.contains(value), "{}", err.message);
        }
    }
}
