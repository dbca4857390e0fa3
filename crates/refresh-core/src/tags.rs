//! (to be written: PostgreSQL-side helper)
