//! The dashboard's own metrics: the pages open and the updates sent.

use shoal_metrics::{Counter, Gauge, Registry};

/// The dashboard's metric families.
#[derive(Clone, Default)]
pub(crate) struct DashboardMetrics {
    /// Pages following the live updates now.
    pub(crate) live_pages: Gauge,
    /// Updates sent to the pages (each once, however many pages are open).
    pub(crate) updates: Counter,
}

impl DashboardMetrics {
    /// The families, registered in `registry`.
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "shoal_dashboard_live_pages",
            "Pages following the dashboard's live updates",
            metrics.live_pages.clone(),
        );
        registry.register(
            "shoal_dashboard_updates",
            "Updates of records and queues sent to the open pages",
            metrics.updates.clone(),
        );
        metrics
    }
}
