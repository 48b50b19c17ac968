//! The supervisor's metrics: the pool's replicas, desired and running.

use shoal_metrics::{Family, Gauge, PoolLabels, Registry};

/// The supervisor's metric families.
#[derive(Default)]
pub(crate) struct PoolMetrics {
    replicas: Family<PoolLabels, Gauge>,
}

impl PoolMetrics {
    /// The families, registered in `registry`.
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "shoal_pool_replicas",
            "Worker replicas of a pool: desired by the last decision, running now",
            metrics.replicas.clone(),
        );
        metrics
    }

    /// Sets the pool's `desired` and `running` replica counts.
    pub(crate) fn replicas(&self, group: &str, pool: &str, desired: u32, running: usize) {
        let running = i64::try_from(running).unwrap_or(i64::MAX);
        for (state, count) in [("desired", i64::from(desired)), ("running", running)] {
            let labels = PoolLabels {
                group: group.to_string(),
                pool: pool.to_string(),
                state: state.to_string(),
            };
            self.replicas.get_or_create(&labels).set(count);
        }
    }
}
