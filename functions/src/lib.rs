//! The Lambda side of the data refresh: one bootstrap binary (`src/main.rs`) serves every
//! step; each step is its own Lambda function, told which step it runs by `REFRESH_STEP`.
//!
//! - [`runtime`]: the one runner (logs, input parsing, error names);
//! - [`context`]: configuration and the lookups steps share;
//! - [`steps`]: the registry of steps and, one file per step, its input/output shapes and
//!   the few lines that call `refresh_core`;
//! - [`ec2`], [`sfn`], [`worker_client`], [`chat`]: adapters to EC2, Step Functions, the
//!   worker and the chat webhook.
//!
//! All domain rules live in `refresh_core`; nothing here decides anything a test of the
//! library could not see.

#![recursion_limit = "256"]

pub mod chat;
pub mod context;
pub mod ec2;
pub mod runtime;
pub mod sfn;
pub mod steps;
pub mod worker_client;

pub use context::Context;
pub use runtime::{parse_input, StepFailure};
