//! End-to-end tests: real nats-server processes, real `shoal` processes,
//! real signals. Each test starts its own server on free ports with its own
//! store, and everything it started is stopped when it ends.

mod support;

mod bounds;
mod chaos;
mod client;
mod cluster;
mod commands;
mod config;
mod core_loop;
mod dev;
mod faults;
mod help;
mod input;
mod lifecycle;
mod liveness;
mod logins;
mod poison;
mod projection;
mod registry;
mod render;
mod resources;
mod roles;
mod sandbox;
mod schemas;
mod state;
mod supervise;
mod tags;
mod tenants;
mod upgrade;
mod worker_confinement;
