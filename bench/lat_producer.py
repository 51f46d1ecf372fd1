#!/usr/bin/env python3
"""Produces realistic Guance events at a steady rate, each stamped with its send time.

  lat_producer.py BROKERS TOPIC RATE SECONDS [WARMUP_SECONDS]

The send time (time.time_ns() just before produce()) goes into the event's
df_dimension_tags as sent_ns; kbridge copies the tags into alertDims, where
bench/latsink reads it. Warm-up events carry bench_phase=warmup and are not
counted by the sink. Events are serialized ahead of time with a fixed-width
placeholder so that stamping costs a byte replace, not a JSON dump.
Prints one JSON line: {"sent": N, "warmup": W, "late_ms_max": …} (how far
the pacing fell behind schedule at worst).
"""

import json
import os
import sys
import time

from confluent_kafka import Producer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_events import event  # noqa: E402

PLACEHOLDER = "9" * 19


def main():
    brokers, topic, rate, secs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    warm = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    n_warm, n = int(rate * warm), int(rate * secs)
    p = Producer({"bootstrap.servers": brokers, "linger.ms": 0, "acks": "all"})
    # Pre-serialize every event (each its own alert, keyed by df_fault_id like the preloads).
    payloads = []
    for i in range(n_warm + n):
        tags = {"sent_ns": PLACEHOLDER}
        if i < n_warm:
            tags["bench_phase"] = "warmup"
        line = event(1_000_000 + i, 2048, tags)
        payloads.append((json.loads(line)["df_fault_id"].encode(), line.encode()))
    errors = []

    def report(err, _msg):
        if err is not None:
            errors.append(str(err))

    ph = PLACEHOLDER.encode()
    interval = 1.0 / rate
    start = time.monotonic() + 0.05
    late_max = 0.0
    for i, (key, body) in enumerate(payloads):
        due = start + i * interval
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        else:
            late_max = max(late_max, now - due)
        stamp = str(time.time_ns()).encode()
        p.produce(topic, body.replace(ph, stamp, 1), key=key, on_delivery=report)
        p.poll(0)
    left = p.flush(30)
    print(json.dumps({"sent": n, "warmup": n_warm, "undelivered": left, "errors": len(errors),
                      "late_ms_max": round(late_max * 1000, 3)}))
    sys.exit(1 if left or errors else 0)


if __name__ == "__main__":
    main()
