//! (to be written: Elasticsearch-side helper)
