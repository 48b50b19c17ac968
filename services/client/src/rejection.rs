//! Publishing rejections and dead letters once, whoever sends them, and
//! where a delivered message sits in its stream.

use async_nats::jetstream::{self, Message};
use async_nats::HeaderMap;
use shoal_protocol::rejection::{DeadLetter, Position, Rejection};

use crate::publish::{publish_once, Check, PublishError};

/// Stores `rejection` (and its dead letter) once, whoever publishes it;
/// `check` as in [`publish_once`].
pub async fn publish_rejection(
    js: &jetstream::Context,
    rejection: &Rejection,
    check: Check,
) -> Result<(), PublishError> {
    publish_once(
        js,
        &rejection.subject,
        &rejection.msg_id,
        HeaderMap::new(),
        rejection.body.clone().into(),
        check,
    )
    .await?;
    if let Some(dead_letter) = &rejection.dead_letter {
        publish_dead_letter(js, dead_letter, check).await?;
    }
    Ok(())
}

/// Stores the copy of a job given up once, whoever publishes it and however often.
pub async fn publish_dead_letter(
    js: &jetstream::Context,
    dead_letter: &DeadLetter,
    check: Check,
) -> Result<(), PublishError> {
    let (pairs, body) = dead_letter.headers_and_body();
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(name, value.as_str());
    }
    publish_once(
        js,
        &dead_letter.subject,
        &dead_letter.msg_id(),
        headers,
        body.into(),
        check,
    )
    .await
    .map(drop)
}

/// The position of a message delivered by a consumer.
pub fn position(message: &Message) -> Option<Position<'_>> {
    let info = message.info().ok()?;
    Some(Position {
        stream: info.stream,
        sequence: info.stream_sequence,
        stored_at: info.published.into(),
    })
}
