#!/usr/bin/env bash
# kbridge's benchmark harness: one command, one table.
#
#   bench/run.sh [--quick] [--only sink,relay,jq,audit,seed,latency,backlog,cli] [--keep]
#
# Installs what it needs when missing (apt: nginx-light, wrk, kcat, time,
# golang-go; pip: confluent-kafka, requests), builds kbridge with the release-lto profile (what ships),
# starts a private test broker (scripts/test-kafka.sh, Apache Kafka 4.4),
# builds the latency sink (bench/latsink, Go, standard
# library only), then runs bench/bench.py: relay throughput against nginx,
# the article's Python seed side by side, produce→webhook latency, backlog
# drain, and the CLI beside kcat. Prints the table and writes it with the
# machine's description to bench/results.md (full run) or
# $BENCH_WORK/results-quick.md (--quick). Exits 0 whether targets are met
# or not; the table says which.
#
# --quick: small N everywhere (a smoke run of a few minutes).
#
# The broker is a private instance of the test broker, started with
# scripts/test-kafka.sh on its own ports (BENCH_KAFKA_PORT, default 19592,
# controller +1) and state dir ($BENCH_WORK/kafka), so that test suites
# using the shared test broker on 19092 neither disturb nor are disturbed by
# a run; it is stopped at the end (--keep leaves it and the topics).
#
# Environment: BENCH_WORK (scratch dir, default /tmp/kbridge-bench; the
# generated event files, up to ~2.5 GB for a full run, are cached there),
# CARGO_TARGET_DIR (as cargo), SEED_SERVICE (path of seed_service.py,
# default ../shared/peers/seed_service.py from the repository root),
# KBRIDGE_BENCH_BROKERS (use this running cluster instead of a private broker),
# KBRIDGE_BIN (benchmark this kbridge binary instead of building one, e.g.
# to compare a patched build; results then go to $BENCH_WORK).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_WORK:-/tmp/kbridge-bench}
KAFKA_PORT=${BENCH_KAFKA_PORT:-19592}
BROKERS=${KBRIDGE_BENCH_BROKERS:-127.0.0.1:$KAFKA_PORT}
QUICK=0
KEEP=0
PASS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1; PASS+=(--quick) ;;
    --only) PASS+=(--only "$2"); shift ;;
    --keep) PASS+=(--keep); KEEP=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

say() { echo "[run.sh] $*" >&2; }

# ------------------------------------------------------------------ tools
SUDO=
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
need_apt=()
command -v nginx >/dev/null || need_apt+=(nginx-light)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v kcat >/dev/null || need_apt+=(kcat)
[[ -x /usr/bin/time ]] || need_apt+=(time)
command -v go >/dev/null || need_apt+=(golang-go)
if [[ ${#need_apt[@]} -gt 0 ]]; then
  say "installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! python3 -c 'import confluent_kafka, requests' 2>/dev/null; then
  say "installing confluent-kafka and requests"
  python3 -m pip install -q confluent-kafka requests
fi

# ------------------------------------------------------------------ build
mkdir -p "$WORK/bin"
if [[ -n ${KBRIDGE_BIN:-} ]]; then
  say "using $KBRIDGE_BIN"
  cp "$KBRIDGE_BIN" "$WORK/bin/kbridge"
else
  say "building kbridge (release-lto, the profile that ships)"
  # The path cargo reports for this build (honours CARGO_TARGET_DIR and
  # .cargo/config). Do not share a target dir with another work tree while
  # benchmarking: the last build of either owns target/release-lto/kbridge.
  BIN=$(cd "$ROOT" && cargo build --profile release-lto --features jemalloc --locked --message-format=json-render-diagnostics \
    | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "kbridge" and m.get("executable"):
        print(m["executable"])')
  [[ -x $BIN ]] || { echo "run.sh: cargo did not report the kbridge binary" >&2; exit 1; }
  # A private copy: a concurrent build cannot swap the binary mid-run.
  cp "$BIN" "$WORK/bin/kbridge"
fi
say "building the latency sink"
(cd "$ROOT/bench/latsink" && GOFLAGS=-mod=mod go build -o "$WORK/bin/latsink" .)

# ------------------------------------------------------------------ broker
kafka() {
  # The shared jar cache of the test broker, if it has one (else Maven fills ours).
  local libs=${KBRIDGE_KAFKA_LIBS:-}
  if [[ -z $libs && -d $HOME/.cache/kbridge-kafka/libs ]]; then libs=$HOME/.cache/kbridge-kafka/libs; fi
  KBRIDGE_KAFKA_HOME="$WORK/kafka" KBRIDGE_KAFKA_LIBS="${libs:-$WORK/kafka/libs}" \
    KBRIDGE_KAFKA_PORT=$KAFKA_PORT KBRIDGE_KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1)) \
    "$ROOT/scripts/test-kafka.sh" "$@"
}
if [[ -z ${KBRIDGE_BENCH_BROKERS:-} ]]; then
  if [[ $KEEP -eq 0 ]]; then trap 'kafka stop >/dev/null 2>&1 || true' EXIT; fi
  kafka start
fi

# ------------------------------------------------------------------ run
OUT=()
if [[ $QUICK -eq 0 && -z ${KBRIDGE_BIN:-} ]]; then OUT=(--out "$ROOT/bench/results.md"); fi
python3 "$ROOT/bench/bench.py" --kbridge "$WORK/bin/kbridge" --latsink "$WORK/bin/latsink" \
  --brokers "$BROKERS" --work "$WORK" --seed "${SEED_SERVICE:-$ROOT/../shared/peers/seed_service.py}" \
  "${OUT[@]}" "${PASS[@]}"
