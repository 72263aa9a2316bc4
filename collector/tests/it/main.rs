//! Integration tests of the collector: a real service on ephemeral ports, real OTLP clients,
//! real HTTP.

mod alerts;
mod alerts_failover;
mod api;
mod auth;
mod cli;
mod config_files;
mod durable;
mod end_to_end;
mod events;
mod faults;
mod forward;
mod fuzz_regressions;
mod grafana;
mod harness;
mod image;
mod libraries;
mod limits;
mod listeners;
mod manifests;
mod metrics;
mod process;
mod processors;
mod prometheus;
mod receiver_errors;
mod registry;
mod stream;
mod tls;
mod ui;
