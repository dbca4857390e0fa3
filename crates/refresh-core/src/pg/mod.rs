//! PostgreSQL side of the refresh: connecting, copying, tag filtering, constraints, promotion.
//! Every PostgreSQL error goes through [`error`], every quoted name or literal through [`sql`].

pub mod connect;
pub mod copy;
pub mod counts;
pub mod error;
pub mod fdw;
pub mod filter;
pub mod job;
pub mod key_window;
pub mod promote;
pub mod sql;
