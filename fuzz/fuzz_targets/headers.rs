//! Header bytes through librdkafka's API: any keys (without NUL, as
//! librdkafka keeps them) and values read back exactly by `headers::read`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdkafka::bindings as rdsys;

#[allow(dead_code)]
#[path = "../../src/headers.rs"]
mod headers;

fuzz_target!(|data: &[u8]| {
    // Pairs of key and value, separated by NUL bytes.
    let parts: Vec<&[u8]> = data.split(|b| *b == 0).collect();
    let pairs: Vec<(&[u8], Option<&[u8]>)> = parts
        .chunks(2)
        .map(|c| (c[0], c.get(1).copied().filter(|v| !v.is_empty())))
        .collect();
    // SAFETY: a header list of our own, destroyed below; every pointer
    // handed to librdkafka points into `data`, with its length.
    unsafe {
        let list = rdsys::rd_kafka_headers_new(pairs.len());
        for (k, v) in &pairs {
            let (vp, vn) = match v {
                Some(v) => (v.as_ptr().cast(), v.len() as isize),
                None => (std::ptr::null(), 0),
            };
            rdsys::rd_kafka_header_add(list, k.as_ptr().cast(), k.len() as isize, vp, vn);
        }
        let read = headers::read(list);
        assert_eq!(read.len(), pairs.len());
        for (h, (k, v)) in read.iter().zip(&pairs) {
            assert_eq!(h.key, *k);
            assert_eq!(h.value, *v);
        }
        rdsys::rd_kafka_headers_destroy(list);
    }
});
