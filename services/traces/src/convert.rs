//! A Shoal span as OpenTelemetry's exporter takes it.

use std::borrow::Cow;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind as OtelKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use shoal_protocol::span::{AttributeValue, EndedSpan, SpanKind};
use shoal_protocol::trace::TraceParent;

/// The span's data, or none for ids that are not hex (never made here).
pub(crate) fn span_data(span: EndedSpan, scope: &InstrumentationScope) -> Option<SpanData> {
    let context = span_context(&span.context)?;
    let parent_span_id = match &span.parent {
        Some(parent) => SpanId::from_hex(&parent.span_id()).ok()?,
        None => SpanId::INVALID,
    };
    let attributes = span
        .attributes
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                AttributeValue::Text(text) => Value::from(text),
                AttributeValue::Number(number) => Value::I64(number),
            };
            KeyValue::new(key, value)
        })
        .collect();
    Some(SpanData {
        span_context: context,
        parent_span_id,
        parent_span_is_remote: span.parent.is_some(),
        span_kind: match span.kind {
            SpanKind::Producer => OtelKind::Producer,
            SpanKind::Consumer => OtelKind::Consumer,
        },
        name: Cow::Owned(span.name),
        start_time: span.start,
        end_time: span.end,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match span.error {
            Some(description) => Status::error(description),
            None => Status::Unset,
        },
        instrumentation_scope: scope.clone(),
    })
}

fn span_context(trace: &TraceParent) -> Option<SpanContext> {
    Some(SpanContext::new(
        TraceId::from_hex(&trace.trace_id()).ok()?,
        SpanId::from_hex(&trace.span_id()).ok()?,
        match trace.sampled() {
            true => TraceFlags::SAMPLED,
            false => TraceFlags::NOT_SAMPLED,
        },
        false,
        TraceState::default(),
    ))
}
