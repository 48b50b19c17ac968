//! W3C trace context: the `traceparent` a submission may carry and each
//! attempt continues. Read strictly, since any submitter writes it: a value
//! that is not a valid version-00 `traceparent` is not one.

use std::fmt;
use std::str::FromStr;

/// The header (and variable, upper-cased) that carries a trace context.
pub const TRACEPARENT: &str = "traceparent";

/// A position in a trace: the trace, the span that is the parent of what
/// comes next, and the trace flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

/// Why a text is no `traceparent`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("traceparent: `{0}` is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)")]
pub struct InvalidTraceParent(pub String);

impl TraceParent {
    /// A new trace with one sampled span, from random ids; `None` for the
    /// all-zero ids the standard forbids.
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8]) -> Option<Self> {
        let parent = Self {
            trace_id,
            span_id,
            flags: 1,
        };
        parent.is_valid().then_some(parent)
    }

    /// The same trace, with `span_id` as the parent of what follows.
    pub fn child(&self, span_id: [u8; 8]) -> Option<Self> {
        let child = Self { span_id, ..*self };
        child.is_valid().then_some(child)
    }

    /// The trace id, as 32 hex digits.
    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id, as 16 hex digits.
    pub fn span_id(&self) -> String {
        hex(&self.span_id)
    }

    /// Whether the trace is sampled (flag `01`): what a backend keeps.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    fn is_valid(&self) -> bool {
        self.trace_id != [0; 16] && self.span_id != [0; 8]
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Lower-case hex digits into `out`, exactly.
fn unhex(text: &str, out: &mut [u8]) -> Option<()> {
    if text.len() != out.len() * 2 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    for (index, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[index * 2..index * 2 + 2], 16).ok()?;
    }
    Some(())
}

impl FromStr for TraceParent {
    type Err = InvalidTraceParent;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidTraceParent(text.chars().take(64).collect());
        let mut parts = text.split('-');
        let (Some("00"), Some(trace), Some(span), Some(flags), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(invalid());
        };
        let mut parent = Self {
            trace_id: [0; 16],
            span_id: [0; 8],
            flags: 0,
        };
        let mut flag = [0u8; 1];
        unhex(trace, &mut parent.trace_id).ok_or_else(invalid)?;
        unhex(span, &mut parent.span_id).ok_or_else(invalid)?;
        unhex(flags, &mut flag).ok_or_else(invalid)?;
        parent.flags = flag[0];
        parent.is_valid().then_some(parent).ok_or_else(invalid)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id(),
            self.span_id(),
            self.flags
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_reads_back_as_written_and_a_child_keeps_its_trace() {
        let parent: TraceParent = EXAMPLE.parse().expect("valid");
        assert_eq!(parent.to_string(), EXAMPLE);
        let child = parent.child([7; 8]).expect("a child");
        assert_eq!(child.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(child.span_id(), "0707070707070707");
        assert_eq!(
            child.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0707070707070707-01"
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47é6-00f067aa0ba902b7-01",
        ] {
            assert!(text.parse::<TraceParent>().is_err(), "{text}");
        }
    }
}
