//! Domain logic of the data refresh pipeline.
//!
//! Everything here is plain Rust over PostgreSQL and Elasticsearch clients: no Lambda, no
//! HTTP serving, no CLI. Entry points (`functions/`, `crates/indexer-worker`) parse their
//! input, call into this crate and return its output.

pub mod concurrency;
pub mod config;
pub mod document;
pub mod error;
pub mod es;
pub mod guard;
pub mod input;
pub mod media;
pub mod pg;
pub mod ranges;
pub mod settings;
pub mod tags;
pub mod worker_api;
