//! Record headers as Kafka carries them: a key and a value of any bytes.
//!
//! rdkafka's `Headers::try_get` turns each key into a `&str` with an
//! `unwrap`, so a single record whose header key is not UTF-8 (Kafka accepts
//! any bytes; `kcat -P -H $'\xff\xfe=x'` writes one) panics whoever reads
//! it. kbridge never reads headers through that trait: it copies them whole
//! (`BorrowedHeaders::detach`, a native copy) or reads them here, through
//! librdkafka's C API, as bytes.

use std::ffi::CStr;

use rdkafka::bindings as rdsys;
use rdkafka::message::BorrowedMessage;

/// One header: the key as bytes (librdkafka keeps keys NUL-terminated, so a
/// key never contains a NUL), the value as bytes or absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawHeader<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// Every header of a consumed message, in order, whatever their bytes.
pub(crate) fn raw_headers<'a>(message: &'a BorrowedMessage<'_>) -> Vec<RawHeader<'a>> {
    let mut headers: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `message.ptr()` is the live rd_kafka_message_t of `message`;
    // librdkafka returns a pointer to headers it owns with the message (or
    // an error and no headers).
    let err = unsafe { rdsys::rd_kafka_message_headers(message.ptr(), &mut headers) };
    if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
        return Vec::new();
    }
    // SAFETY: the headers stay valid and unchanged while the message is
    // borrowed, which the returned lifetime 'a ties them to.
    unsafe { read(headers) }
}

/// The bytes of a consumed message's headers (keys and values), read as
/// [`raw_headers`] reads them, without collecting them.
pub(crate) fn size(message: &BorrowedMessage<'_>) -> usize {
    let mut headers: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: as in `raw_headers`.
    let err = unsafe { rdsys::rd_kafka_message_headers(message.ptr(), &mut headers) };
    if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
        return 0;
    }
    let mut total = 0;
    // SAFETY: as in `raw_headers`; the headers live as long as `message`.
    unsafe {
        each(headers, |h| {
            total += h.key.len() + h.value.map_or(0, <[u8]>::len)
        })
    };
    total
}

/// The value of the last header named `key` of a consumed message, if it
/// has one (read as [`raw_headers`] reads them, without collecting them);
/// `Some(None)`: the header is there without a value.
pub(crate) fn last<'a>(message: &'a BorrowedMessage<'_>, key: &[u8]) -> Option<Option<&'a [u8]>> {
    let mut headers: *mut rdsys::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: as in `raw_headers`.
    let err = unsafe { rdsys::rd_kafka_message_headers(message.ptr(), &mut headers) };
    if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
        return None;
    }
    let mut found = None;
    // SAFETY: as in `raw_headers`; the headers live as long as `message`.
    unsafe {
        each(headers, |h| {
            if h.key == key {
                found = Some(h.value);
            }
        })
    };
    found
}

/// Every header of a native header list, as bytes.
///
/// # Safety
/// `headers` must point to a valid `rd_kafka_headers_t` that outlives `'a`
/// and is not changed meanwhile.
pub(crate) unsafe fn read<'a>(headers: *const rdsys::rd_kafka_headers_t) -> Vec<RawHeader<'a>> {
    // SAFETY: `headers` is valid (the caller's promise).
    let count = unsafe { rdsys::rd_kafka_header_cnt(headers) };
    let mut out = Vec::with_capacity(count);
    // SAFETY: the caller's promise, passed on.
    unsafe { each(headers, |h| out.push(h)) };
    out
}

/// Calls `f` with every header of a native header list, as bytes.
///
/// # Safety
/// As for [`read`].
unsafe fn each<'a>(headers: *const rdsys::rd_kafka_headers_t, mut f: impl FnMut(RawHeader<'a>)) {
    // SAFETY: `headers` is valid (the caller's promise).
    let count = unsafe { rdsys::rd_kafka_header_cnt(headers) };
    for idx in 0..count {
        let mut name: *const std::os::raw::c_char = std::ptr::null();
        let mut value: *const std::os::raw::c_void = std::ptr::null();
        let mut size: usize = 0;
        // SAFETY: `idx` < count; librdkafka fills the out-pointers with
        // data owned by `headers`.
        let err = unsafe {
            rdsys::rd_kafka_header_get_all(headers, idx, &mut name, &mut value, &mut size)
        };
        if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            continue;
        }
        // SAFETY: librdkafka's header names are NUL-terminated strings, and
        // a non-null value points to `size` bytes; both live as `headers`.
        let (key, value) = unsafe {
            (
                CStr::from_ptr(name).to_bytes(),
                (!value.is_null()).then(|| std::slice::from_raw_parts(value.cast::<u8>(), size)),
            )
        };
        f(RawHeader { key, value });
    }
}
