//! A producer's handle on the one topic `kbridge produce` writes to, and
//! its headers, made once.
//!
//! rust-rdkafka's `send` names the topic of every message: it copies the
//! name into a new `CString`, and librdkafka looks the topic up by that
//! name under the client's lock, for each message. kcat holds a topic
//! handle instead, and so does `produce`: at a million lines that lookup
//! was the difference between the two. Delivery reports still go through
//! rust-rdkafka's `poll` and the producer's context: the message's opaque
//! is its line number, as `ProducerContext::DeliveryOpaque = usize` reads
//! it back.

use std::ffi::{CString, c_void};
use std::marker::PhantomData;
use std::ptr;

use anyhow::{Result, anyhow};
use rdkafka::bindings as rdsys;
use rdkafka::bindings::rd_kafka_vtype_t::{
    RD_KAFKA_VTYPE_END, RD_KAFKA_VTYPE_HEADERS, RD_KAFKA_VTYPE_KEY, RD_KAFKA_VTYPE_MSGFLAGS,
    RD_KAFKA_VTYPE_OPAQUE, RD_KAFKA_VTYPE_PARTITION, RD_KAFKA_VTYPE_RKT, RD_KAFKA_VTYPE_VALUE,
};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

/// The topic handle and the headers every message gets, valid while the
/// producer they were made with (`'p`) lives.
pub(crate) struct TopicHandle<'p> {
    rk: *mut rdsys::rd_kafka_t,
    rkt: *mut rdsys::rd_kafka_topic_t,
    /// Copied into each message (librdkafka takes ownership of the copy).
    headers: *mut rdsys::rd_kafka_headers_t,
    producer: PhantomData<&'p ()>,
}

impl<'p> TopicHandle<'p> {
    pub(crate) fn new<C: ProducerContext>(
        producer: &'p BaseProducer<C>,
        topic: &str,
        headers: &[(String, String)],
    ) -> Result<Self> {
        let name = CString::new(topic).map_err(|_| anyhow!("topic name contains a NUL byte"))?;
        let rk = producer.client().native_ptr();
        // SAFETY: `rk` is the live producer's handle, `name` a valid C
        // string; a NULL topic config takes the producer's defaults.
        let rkt = unsafe { rdsys::rd_kafka_topic_new(rk, name.as_ptr(), ptr::null_mut()) };
        if rkt.is_null() {
            return Err(anyhow!("cannot use topic '{topic}'"));
        }
        let mut handle = Self {
            rk,
            rkt,
            headers: ptr::null_mut(),
            producer: PhantomData,
        };
        if !headers.is_empty() {
            // SAFETY: a new list owned by `handle` (freed in Drop); names
            // and values are passed with their lengths, so they need no NUL.
            unsafe {
                handle.headers = rdsys::rd_kafka_headers_new(headers.len());
                for (k, v) in headers {
                    rdsys::rd_kafka_header_add(
                        handle.headers,
                        k.as_ptr().cast(),
                        k.len() as isize,
                        v.as_ptr().cast(),
                        v.len() as isize,
                    );
                }
            }
        }
        Ok(handle)
    }

    /// Queues one message (librdkafka copies the payload and key);
    /// `partition` `None` lets the partitioner choose. `QueueFull` means:
    /// serve delivery reports, then send it again.
    pub(crate) fn send(
        &self,
        payload: &[u8],
        key: Option<&[u8]>,
        partition: Option<i32>,
        opaque: usize,
    ) -> Result<(), RDKafkaErrorCode> {
        let (key_ptr, key_len) = key.map_or((ptr::null_mut(), 0), |k| {
            (k.as_ptr() as *mut c_void, k.len())
        });
        // SAFETY: librdkafka owns a copy of the headers only if the call
        // succeeds; otherwise it is freed below.
        let headers = if self.headers.is_null() {
            ptr::null_mut()
        } else {
            unsafe { rdsys::rd_kafka_headers_copy(self.headers) }
        };
        // SAFETY: the arguments follow rd_kafka_producev's (type, value)
        // pairs as rust-rdkafka's own `send` passes them; `self.rkt` and
        // `self.rk` live as long as `self`; payload and key are copied
        // (RD_KAFKA_MSG_F_COPY) before the call returns.
        let err = unsafe {
            rdsys::rd_kafka_producev(
                self.rk,
                RD_KAFKA_VTYPE_RKT,
                self.rkt,
                RD_KAFKA_VTYPE_PARTITION,
                partition.unwrap_or(-1),
                RD_KAFKA_VTYPE_MSGFLAGS,
                rdsys::RD_KAFKA_MSG_F_COPY,
                RD_KAFKA_VTYPE_VALUE,
                payload.as_ptr() as *mut c_void,
                payload.len(),
                RD_KAFKA_VTYPE_KEY,
                key_ptr,
                key_len,
                RD_KAFKA_VTYPE_OPAQUE,
                opaque as *mut c_void,
                RD_KAFKA_VTYPE_HEADERS,
                headers,
                RD_KAFKA_VTYPE_END,
            )
        };
        if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Ok(());
        }
        if !headers.is_null() {
            // SAFETY: not taken by librdkafka (the call failed).
            unsafe { rdsys::rd_kafka_headers_destroy(headers) };
        }
        Err(err.into())
    }
}

impl Drop for TopicHandle<'_> {
    fn drop(&mut self) {
        // SAFETY: made in `new` and destroyed once, while the producer
        // (`'p`) still lives.
        unsafe {
            if !self.headers.is_null() {
                rdsys::rd_kafka_headers_destroy(self.headers);
            }
            rdsys::rd_kafka_topic_destroy(self.rkt);
        }
    }
}
