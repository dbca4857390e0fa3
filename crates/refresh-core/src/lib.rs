//! Domain logic of the data refresh pipeline.
//!
//! Everything here is plain Rust over PostgreSQL and Elasticsearch clients: no Lambda, no
//! HTTP serving, no CLI. Entry points (`functions/`, `crates/indexer-worker`) parse their
//! input, call into this crate and return its output.

pub mod cleanup;
pub mod concurrency;
pub mod config;
pub mod document;
pub mod environment;
pub mod error;
pub mod es;
pub mod guard;
pub mod input;
pub mod machines;
pub mod media;
pub mod names;
pub mod notification;
pub mod pg;
pub mod ranges;
pub mod report;
pub mod secrets;
pub mod sensitive;
pub mod settings;
pub mod tags;
pub mod telemetry;
pub mod worker_api;
