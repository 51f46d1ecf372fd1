//! Stage 1 of a storm route: the event, unchanged (key aside), into the
//! route's repartition topic, keyed by its alert id — so that all events
//! of one alert meet on one partition, whichever partition of the source
//! they came from. Its original headers and timestamp go with it (the
//! timestamp is what `max_age` measures), and `kbridge.source` says where
//! it came from.

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::relay::deliver::Interrupted;
use crate::relay::job::Job;
use crate::relay::shared::Shared;

/// Copies the job's event into its route's repartition topic, keyed by
/// `key` (unkeyed: any partition, and no memory for it); handled once the
/// brokers have it.
pub(crate) async fn forward(
    shared: &Shared,
    job: &Job,
    key: Option<&str>,
) -> Result<(), Interrupted> {
    let (Some(storm), Some(route)) = (shared.storm(), job.route.storm.as_ref()) else {
        return Err(Interrupted);
    };
    let origin = &job.origin;
    let source = origin.coordinates();
    let headers = origin.headers.clone().unwrap_or_default().insert(Header {
        key: "kbridge.source",
        value: Some(source.as_bytes()),
    });
    let topic = &*route.repartition;
    storm
        .send_acked(
            "an event into its repartition topic",
            || {
                let mut r: FutureRecord<'_, [u8], [u8]> =
                    FutureRecord::to(topic).headers(OwnedHeaders::clone(&headers));
                if let Some(k) = key {
                    r = r.key(k.as_bytes());
                }
                if let Some(p) = &origin.payload {
                    r = r.payload(p.as_slice());
                }
                if let Some(ts) = origin.timestamp_ms {
                    r = r.timestamp(ts);
                }
                r
            },
            &job.ownership,
        )
        .await?;
    shared.totals().storm_forwarded(job.route.name());
    tracing::trace!(event = %source, route = %job.route.name(), "re-keyed into {topic}");
    Ok(())
}
