//! `refresh`, the operator CLI of the data refresh pipeline.
//!
//! The core is pure and tested on recorded executions: `history` (plain records of
//! `GetExecutionHistory` / `DescribeExecution`) → `interpret` (history events → run events)
//! → `model` (the run: stages, ranges, filtered index, counts, report) → `render` / `tables`
//! (lines, JSON, bar texts, summaries); `reader` merges a refresh with the worker-range
//! executions its ranges run in. `aws` makes the calls; `app` runs the commands;
//! `start` checks the input with `refresh_core::input`, the rule the `validate_input`
//! Lambda applies.

pub mod app;
pub mod aws;
pub mod cleanup_check;
pub mod cli;
pub mod error;
pub mod finish;
pub mod follow;
pub mod history;
pub mod interpret;
pub mod model;
pub mod origin;
pub mod reader;
pub mod render;
pub mod source;
pub mod stages;
pub mod start;
pub mod tables;
