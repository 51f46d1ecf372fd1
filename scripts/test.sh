#!/usr/bin/env bash
# README's test command: installs what the tests need (scripts/setup.sh,
# which also starts the test broker), runs every test, then stops the test
# brokers this run started, so that no Kafka JVM is left running unannounced.
#
#   scripts/test.sh                  # everything
#   scripts/test.sh --test relay     # arguments go to `cargo test --locked`
#   KBRIDGE_KEEP_KAFKA=1 scripts/test.sh   # leave the brokers up for the next run
#
# Brokers that were already running when it started (started by hand, or by
# an earlier plain `cargo test`) are left as they were. A plain `cargo test`
# starts the brokers it needs and leaves them up for the next run;
# `scripts/test-kafka.sh stop --all` stops them all.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

up() { scripts/test-kafka.sh status "$@" >/dev/null 2>&1; }
single_before=$(up && echo 1 || true)
cluster_before=$(up --cluster && echo 1 || true)

scripts/setup.sh || exit $?
cargo test --locked "$@"
status=$?

stopped=()
kept=()
if [[ -n ${KBRIDGE_KEEP_KAFKA:-} ]]; then
  up && kept+=("the single broker (127.0.0.1:19092)")
  up --cluster && kept+=("the 3-node cluster (127.0.0.1:19192-19194)")
else
  if [[ -z $single_before ]] && up; then
    scripts/test-kafka.sh stop >/dev/null 2>&1 && stopped+=("the single broker")
  fi
  if [[ -z $cluster_before ]] && up --cluster; then
    scripts/test-kafka.sh stop --cluster >/dev/null 2>&1 && stopped+=("the 3-node cluster")
  fi
  [[ -n $single_before ]] && up && kept+=("the single broker (127.0.0.1:19092, running before)")
  [[ -n $cluster_before ]] && up --cluster && kept+=("the 3-node cluster (127.0.0.1:19192-19194, running before)")
fi
joined() { local IFS=';'; echo "$*" | sed 's/;/ and /g'; }
if ((${#stopped[@]} > 0)); then
  echo "test: stopped the test Kafka this run started: $(joined "${stopped[@]}")" >&2
fi
if ((${#kept[@]} > 0)); then
  echo "test: still running: $(joined "${kept[@]}"); stop them all with: scripts/test-kafka.sh stop --all" >&2
fi
exit "$status"
