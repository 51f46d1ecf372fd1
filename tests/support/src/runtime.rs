//! One async runtime per test process for what needs one: the fake target's
//! HTTP server and the rdkafka producer's futures. Tests themselves stay
//! synchronous.

use std::sync::OnceLock;

/// One multi-threaded runtime for the fake target and the rdkafka futures.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("test-support-rt")
            .build()
            .expect("cannot build the test runtime")
    })
}
