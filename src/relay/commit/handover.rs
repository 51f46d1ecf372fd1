//! Reading what a partition's previous owner handled beyond its commit
//! point (`handed_over`), when the partition is assigned here.
//!
//! One OffsetFetch for the newly assigned partitions, made in the assign
//! callback before their first message is handed to the consume loop (the
//! loop is the one polling: no message arrives while the callback runs).
//! The previous owner committed before its revoke finished, and the group
//! assigns a revoked partition only after that, so the record read is its
//! last word. A fetch that fails or times out costs duplicates, not
//! alerts: nothing is skipped.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::TopicPartitionList;
use rdkafka::bindings as rdsys;
use rdkafka::consumer::{Consumer, ConsumerContext};

use super::handed_over::Handled;
use crate::topic_partition::TopicPartition;

/// How long an assignment waits for the committed offsets: the group's
/// coordinator answered the join a moment ago.
pub(crate) const FETCH_WAIT: Duration = Duration::from_secs(5);

/// The previous owners' records for `tps`, by partition (only those with
/// one). Blocking, up to [`FETCH_WAIT`].
pub(crate) fn read<C: ConsumerContext>(
    consumer: &impl Consumer<C>,
    tps: &[TopicPartition],
) -> HashMap<TopicPartition, Handled> {
    let asked = TopicPartition::list(tps);
    let committed = match consumer.committed_offsets(asked, FETCH_WAIT) {
        Ok(tpl) => tpl,
        Err(e) => {
            tracing::warn!(
                "cannot read the committed offsets of the partitions just assigned: {e}; what their previous owner handled beyond its commit point is sent again"
            );
            return HashMap::new();
        }
    };
    let mut out = HashMap::new();
    for (tp, offset, metadata) in entries(&committed) {
        let Some(offset) = offset else { continue };
        let Ok(text) = std::str::from_utf8(&metadata) else {
            continue;
        };
        match Handled::decode(text, offset) {
            Ok(Some(h)) if !h.is_empty() => {
                tracing::debug!(partition = %tp, offset, "the previous owner handled beyond the commit point: {text}");
                out.insert(tp, h);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                partition = %tp,
                "the commit's metadata looks like kbridge's but cannot be read ({e}); what the previous owner handled beyond offset {offset} is sent again"
            ),
        }
    }
    out
}

/// Each entry of a partition list: its partition, its offset (when it is
/// one) and its metadata as bytes.
///
/// rust-rdkafka's `TopicPartitionListElem::metadata` turns the metadata into
/// a `&str` with an `expect`: a commit whose metadata is not UTF-8 — any
/// client may write any bytes there — would panic the relay at every
/// assignment. So the entries are read through librdkafka's struct, as
/// bytes (as `headers` reads record headers).
fn entries(tpl: &TopicPartitionList) -> Vec<(TopicPartition, Option<i64>, Vec<u8>)> {
    let list = tpl.ptr();
    let mut out = Vec::new();
    // SAFETY: `list` is the live rd_kafka_topic_partition_list_t that `tpl`
    // owns; `cnt` entries of `elems` are valid while `tpl` is borrowed, and
    // each entry's topic is a NUL-terminated string and its metadata
    // `metadata_size` bytes (or null).
    unsafe {
        let list = &*list;
        let count = usize::try_from(list.cnt).unwrap_or(0);
        for i in 0..count {
            let e = &*list.elems.add(i);
            if e.topic.is_null() {
                continue;
            }
            let topic = std::ffi::CStr::from_ptr(e.topic).to_string_lossy();
            let metadata = if e.metadata.is_null() || e.metadata_size == 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts(e.metadata as *const u8, e.metadata_size).to_vec()
            };
            let ok = e.err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR;
            let offset = (ok && e.offset >= 0).then_some(e.offset);
            out.push((
                TopicPartition::new(topic.as_ref(), e.partition),
                offset,
                metadata,
            ));
        }
    }
    out
}
