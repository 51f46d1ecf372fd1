#!/usr/bin/env bash
# Installs what kbridge's build and tests need on a fresh Debian machine, and
# starts the test broker. Idempotent: installs only what is missing.
#
#   scripts/setup.sh && cargo test --locked     (scripts/test.sh does both, then stops the brokers it started)
#
# - build: a C toolchain, pkg-config, OpenSSL and zlib headers (rdkafka builds
#   librdkafka 2.12 from its bundled sources; nothing is linked dynamically
#   but libssl and libz);
# - tests: Java 17 and Maven (a real Apache Kafka, its jars from Maven
#   Central), kcat and Python's confluent-kafka (interoperability tests),
#   openssl (the secured listeners' test certificates, scripts/test-certs.sh),
#   tinyproxy (a real egress proxy for the webhook's proxy tests);
# - the package test (tests/package.rs): cargo-deb, and man-db, systemd
#   (systemd-analyze) and adduser to install and check the .deb.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

pkgs=(kcat build-essential pkg-config libssl-dev zlib1g-dev openssl tinyproxy man-db systemd adduser)
command -v java >/dev/null || pkgs+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || pkgs+=(maven)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  echo "setup: installing ${missing[*]}"
  sudo_ apt-get update -q
  sudo_ apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! python3 -c 'import confluent_kafka' 2>/dev/null; then
  echo "setup: installing confluent-kafka"
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    'confluent-kafka==2.16.1'
fi

if ! command -v cargo-deb >/dev/null; then
  echo "setup: installing cargo-deb"
  cargo install --quiet --locked cargo-deb@3.8.0
fi

# The broker: Kafka jars from Maven Central on first use (cached), then a
# single KRaft node on 127.0.0.1:19092. Tests also start it by themselves.
scripts/test-kafka.sh start
