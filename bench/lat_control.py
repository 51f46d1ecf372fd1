#!/usr/bin/env python3
"""The latency scenario's control: Kafka alone, no relay, no webhook.

  lat_control.py BROKERS TOPIC GROUP COUNT READY_FILE [TIMEOUT_S]

Consumes TOPIC (a plain librdkafka consumer, confluent-kafka) while
lat_producer.py produces to it, and measures produce→consume latency from
the sent_ns tag of each event, so the relay's own share of the
produce→webhook latency can be told apart from the broker's and the
clients'. Touches READY_FILE once partitions are assigned; prints one JSON
line with count, p50/p90/p99/max in ms after COUNT counted (non-warm-up)
events or TIMEOUT_S.
"""

import json
import math
import re
import sys
import time

from confluent_kafka import Consumer

SENT = re.compile(rb'sent_ns[^0-9]{1,8}([0-9]{19})')


def pct(xs, p):
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)] if xs else 0


def main():
    brokers, topic, group, want, ready = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 120
    c = Consumer({"bootstrap.servers": brokers, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    assigned = []
    c.subscribe([topic], on_assign=lambda _c, parts: assigned.extend(parts))
    lat, warm = [], 0
    end = time.monotonic() + timeout
    while len(lat) < want and time.monotonic() < end:
        m = c.poll(0.05)
        if assigned and ready:
            open(ready, "w").close()
            ready = None
        if m is None or m.error():
            continue
        now = time.time_ns()
        v = m.value() or b""
        if b"bench_phase" in v:
            warm += 1
            continue
        s = SENT.search(v)
        if s:
            lat.append((now - int(s.group(1))) / 1e6)
    c.close()
    lat.sort()
    print(json.dumps({"count": len(lat), "warmup": warm, "p50_ms": pct(lat, 50), "p90_ms": pct(lat, 90),
                      "p99_ms": pct(lat, 99), "max_ms": lat[-1] if lat else 0}))


if __name__ == "__main__":
    main()
