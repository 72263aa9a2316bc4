//! LLMScope exporters and query stores. One module per backend (`sqlite`; ClickHouse and
//! PostgreSQL follow); `record` flattens OTLP into store-independent rows and `query` is the one
//! read interface the API uses over every store.

pub mod clickhouse;
pub mod metadata;
pub mod postgres;
pub mod query;
pub mod record;
pub mod sqlite;
