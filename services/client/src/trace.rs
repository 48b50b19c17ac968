//! Trace contexts made here: a new trace for each submission, and a span of
//! its own for each attempt, with random ids.

use shoal_protocol::trace::TraceParent;

/// A new trace, sampled; `None` only when no randomness can be had.
pub fn new_trace() -> Option<TraceParent> {
    let mut trace_id = [0u8; 16];
    let mut span_id = [0u8; 8];
    getrandom::fill(&mut trace_id).ok()?;
    getrandom::fill(&mut span_id).ok()?;
    TraceParent::new(trace_id, span_id)
}

/// A new span in `parent`'s trace.
pub fn child_of(parent: &TraceParent) -> Option<TraceParent> {
    let mut span_id = [0u8; 8];
    getrandom::fill(&mut span_id).ok()?;
    parent.child(span_id)
}
