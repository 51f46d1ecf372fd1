#!/usr/bin/env python3
"""Smoke test for the test broker(s) started by scripts/test-kafka.sh.

Uses confluent-kafka (librdkafka), independent of kbridge, so a failure here
points at the broker setup rather than at kbridge.

    eval "$(scripts/test-kafka.sh env)"            # or: env --cluster
    python3 scripts/kafka/smoke_test.py [--brokers N]

Checks: broker count in metadata, topic creation, produce + consume through a
consumer group, group listing, that auto-creation is off (unknown topic error),
topic deletion. Exits non-zero on the first failure.
"""
import argparse
import os
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default=os.environ.get("KBRIDGE_TEST_BROKERS", "127.0.0.1:19092"))
    ap.add_argument("--brokers", type=int, default=None, help="expected number of brokers")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    bs = args.bootstrap
    t0 = time.monotonic()

    admin = AdminClient({"bootstrap.servers": bs})
    md = admin.list_topics(timeout=args.timeout)
    brokers = sorted(f"{b.id}@{b.host}:{b.port}" for b in md.brokers.values())
    print(f"brokers: {brokers} controller_id={md.controller_id} cluster_id={md.cluster_id}")
    if args.brokers is not None and len(brokers) != args.brokers:
        print(f"FAIL: expected {args.brokers} brokers, got {len(brokers)}")
        return 1
    rf = min(len(brokers), 3)

    topic = f"kbridge-smoke-{uuid.uuid4().hex[:8]}"
    for f in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=rf)]).values():
        f.result(timeout=args.timeout)
    print(f"created topic {topic} (3 partitions, rf={rf})")

    p = Producer({"bootstrap.servers": bs, "acks": "all", "enable.idempotence": True})
    errors = []
    for i in range(10):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(),
                  on_delivery=lambda err, msg: err and errors.append(err))
    left = p.flush(args.timeout)
    if left or errors:
        print(f"FAIL: produce: {left} undelivered, errors={errors}")
        return 1
    print("produced 10 messages")

    group = f"kbridge-smoke-group-{uuid.uuid4().hex[:8]}"
    c = Consumer({"bootstrap.servers": bs, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got = {}
    deadline = time.monotonic() + args.timeout
    while len(got) < 10 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            raise KafkaException(m.error())
        got[m.key().decode()] = m.value().decode()
    c.commit(asynchronous=False)
    if got != {f"k{i}": f"v{i}" for i in range(10)}:
        print(f"FAIL: consumed {got}")
        return 1
    print(f"consumed 10 messages in group {group}")

    groups = [g.group_id for g in admin.list_consumer_groups().result(timeout=args.timeout).valid]
    print(f"groups: {groups}")
    c.close()
    if group not in groups:
        print("FAIL: group not listed")
        return 1

    # auto.create.topics.enable=false: a metadata request for an unknown topic
    # (librdkafka asks with allow_auto_topic_creation=true here) must not create it.
    missing = f"kbridge-smoke-missing-{uuid.uuid4().hex[:8]}"
    err = admin.list_topics(topic=missing, timeout=args.timeout).topics[missing].error
    if err is None or err.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
        print(f"FAIL: metadata for unknown topic {missing} gave {err}")
        return 1
    if missing in admin.list_topics(timeout=args.timeout).topics:
        print(f"FAIL: unknown topic {missing} was auto-created")
        return 1
    print(f"unknown topic rejected: {err.name()}")

    for f in admin.delete_topics([topic]).values():
        f.result(timeout=args.timeout)
    print(f"deleted topic {topic}")
    print(f"smoke test OK in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
