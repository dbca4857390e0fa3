//! Shared glue for the Lambda handlers: logging, settings from Secrets Manager, error names.
