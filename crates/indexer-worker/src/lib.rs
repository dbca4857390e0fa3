//! The indexer worker: an HTTP service that reindexes one id range of a temp table.
