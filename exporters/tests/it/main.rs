//! Store integration tests: the ClickHouse store against a real ClickHouse engine, and the
//! conformance of every store's answers.

mod clickhouse;
mod conformance;
mod data;
mod events;
mod metadata;
mod postgres;
