//! PostgreSQL side of the refresh: connecting, copying, tag filtering, constraints, promotion.

pub mod connect;
pub mod copy;
pub mod counts;
pub mod filter;
pub mod promote;
