//! End-to-end tests: real nats-server processes, real `shoal` processes,
//! real signals. Each test starts its own server on free ports with its own
//! store, and everything it started is stopped when it ends.

mod support;

mod bench;
mod bounds;
mod cancel;
mod chaos;
mod client;
mod cluster;
mod commands;
mod config;
mod core_loop;
mod dashboard;
mod dashboard_workflows;
mod dev;
mod examples;
mod fairness;
mod faults;
mod first_minutes;
mod help;
mod input;
mod limits;
mod liveness;
mod logins;
mod metrics;
mod missing;
mod output;
mod paging;
mod poison;
mod projection;
mod prometheus;
mod registry;
mod render;
mod resources;
mod retries;
mod roles;
mod sandbox;
mod scheduling;
mod schemas;
mod shape;
mod state;
mod supervise;
mod tags;
mod tenant_limits;
mod tenants;
mod traces;
mod upgrade;
mod worker_confinement;
mod workflows;
