//! LLMScope exporters and query stores. One module per destination: the stores (`sqlite`,
//! `clickhouse`, `postgres`) and the write-only exporters (`otlp`, `debug`, `nop`), each with its
//! [`factory`]; `record` flattens OTLP into store-independent rows and `query` is the one
//! read interface the API uses over every store.

pub mod clickhouse;
pub mod debug;
pub mod factory;
pub mod metadata;
pub mod nop;
pub mod otlp;
pub mod postgres;
pub mod query;
pub mod record;
pub mod sqlite;
pub mod tls;
