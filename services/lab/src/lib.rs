//! Whole local Shoal installations to try, measure and break, each with its
//! own nats-server (or three): `shoal dev` runs one with a demo job, `shoal
//! bench` measures jobs per second and latency beside the raw JetStream
//! round trip (and, with `--scaling`, the supervisor's scaling; with
//! `--heartbeats`, the services' cost of a large fleet), and `shoal
//! chaos` kills workers, services and servers under load and counts what
//! was lost or run twice.

pub mod bench;
mod bench_backlog;
mod bench_fair;
mod bench_group;
mod bench_heartbeats;
mod bench_holds;
mod bench_scaling;
mod bench_sweep;
pub mod chaos;
mod chaos_fleet;
mod chaos_holds;
mod cost;
pub mod dev;
pub mod error;
mod floors;
pub mod nats_server;
mod plot;
pub mod signals;
