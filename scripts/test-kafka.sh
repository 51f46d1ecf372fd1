#!/usr/bin/env bash
# Real Apache Kafka (KRaft) brokers for kbridge's integration tests.
#
#   scripts/test-kafka.sh start  [--cluster] [--node N]
#   scripts/test-kafka.sh stop   [--cluster] [--node N] | --all
#   scripts/test-kafka.sh status [--cluster]
#   scripts/test-kafka.sh env    [--cluster]
#
# Single mode (default): one combined broker+controller on 127.0.0.1:19092
# (controller 19093), with two secured listeners beside the PLAINTEXT one:
#   SASL_SSL on 19094 (port + 2): SCRAM-SHA-512 user kbridge / kbridge-scram-secret
#                                 and PLAIN user kbridge-plain / kbridge-plain-secret
#   SSL on 19095 (port + 3): mutual TLS, a client certificate signed by the test CA
# Their certificates come from scripts/test-certs.sh, in $KBRIDGE_KAFKA_HOME/certs
# (the server's is for IP 127.0.0.1 only). The SCRAM user is created when
# the data dir is formatted. Cluster mode (--cluster): three combined
# broker+controller nodes, brokers on 127.0.0.1:19192,19193,19194,
# controllers on 19195,19196,19197 (a 3-voter KRaft quorum), topic defaults
# with replication factor 3 - meant for failover tests.
#
# start   Resolves the Kafka jars with Maven the first time (scripts/kafka/pom.xml,
#         cached in ~/.m2 and in the libs dir), writes the configs, formats a
#         fresh data dir and starts the node(s) in the background, then waits
#         until every broker has logged "Kafka Server started" (which Kafka
#         logs only once the broker is registered and unfenced) and answers on
#         its port. Does nothing if already running. If some nodes of a
#         cluster are down, only those are restarted, keeping their data.
#         --node N (re)starts one node only, keeping its data (failover tests).
# stop    TERM, wait, then KILL. --node N stops only node N (failover tests).
#         --all stops every test broker of both modes (what `cargo test` started:
#         the single node and the 3-node cluster).
# status  Prints the state of every node; exit 0 only if all are up.
# env     Prints `export KBRIDGE_TEST_BROKERS=...` for
#         eval "$(scripts/test-kafka.sh env)". With --cluster it also prints
#         KBRIDGE_TEST_CLUSTER_BROKERS (same value).
#
# Environment (all optional):
#   KBRIDGE_KAFKA_HOME       state root (default ~/.cache/kbridge-kafka)
#   KBRIDGE_KAFKA_LIBS       jar dir (default $KBRIDGE_KAFKA_HOME/libs)
#   KBRIDGE_KAFKA_HOST       listen/advertised address (default 127.0.0.1)
#   KBRIDGE_KAFKA_PORT, KBRIDGE_KAFKA_CONTROLLER_PORT            (19092, 19093)
#   KBRIDGE_KAFKA_SASL_SSL_PORT, KBRIDGE_KAFKA_SSL_PORT   (port + 2, port + 3; single mode)
#   KBRIDGE_KAFKA_CLUSTER_PORTS, KBRIDGE_KAFKA_CLUSTER_CONTROLLER_PORTS
#                            comma-separated, 3 each (19192,19193,19194 / 19195,19196,19197)
#   KBRIDGE_KAFKA_JAVA       java binary (default: $JAVA_HOME/bin/java or java)
#   KBRIDGE_KAFKA_HEAP       heap flags per node (default "-Xmx512m -Xms256m")
#   KBRIDGE_KAFKA_JVM_OPTS   extra JVM flags
#   KBRIDGE_KAFKA_LOG_LEVEL  root log4j2 level (default WARN)
#   KBRIDGE_KAFKA_EXTRA_PROPS  extra server.properties lines (newline-separated)
#   KBRIDGE_KAFKA_START_TIMEOUT  seconds to wait for readiness (default 90)
#   KBRIDGE_KAFKA_STOP_TIMEOUT   seconds between TERM and KILL (default 30)
#
# Files: $KBRIDGE_KAFKA_HOME/{single,cluster}/node-N/{server.properties,data/,server.log,kafka.pid}
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM="$SCRIPT_DIR/kafka/pom.xml"

KAFKA_ROOT=${KBRIDGE_KAFKA_HOME:-$HOME/.cache/kbridge-kafka}
LIBS_DIR=${KBRIDGE_KAFKA_LIBS:-$KAFKA_ROOT/libs}
HOST=${KBRIDGE_KAFKA_HOST:-127.0.0.1}
if [[ -n ${KBRIDGE_KAFKA_JAVA:-} ]]; then
  JAVA=$KBRIDGE_KAFKA_JAVA
elif [[ -n ${JAVA_HOME:-} && -x ${JAVA_HOME}/bin/java ]]; then
  JAVA=$JAVA_HOME/bin/java
else
  JAVA=java
fi
HEAP_OPTS=${KBRIDGE_KAFKA_HEAP:--Xmx512m -Xms256m}
LOG_LEVEL=${KBRIDGE_KAFKA_LOG_LEVEL:-WARN}
START_TIMEOUT=${KBRIDGE_KAFKA_START_TIMEOUT:-90}
STOP_TIMEOUT=${KBRIDGE_KAFKA_STOP_TIMEOUT:-30}
READY_MARKER='Kafka Server started'

log() { echo "test-kafka: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------- mode setup
# Sets MODE, STATE_DIR, CLUSTER_ID, NODE_IDS, BROKER_PORT[id], CONTROLLER_PORT[id]
# and the replication-related topic defaults.
declare -A BROKER_PORT=() CONTROLLER_PORT=()
NODE_IDS=()
CERTS_DIR=$KAFKA_ROOT/certs
SCRAM_USER=kbridge SCRAM_PASSWORD=kbridge-scram-secret
PLAIN_USER=kbridge-plain PLAIN_PASSWORD=kbridge-plain-secret

select_mode() {
  MODE=$1
  local -a bports cports
  if [[ $MODE == single ]]; then
    bports=("${KBRIDGE_KAFKA_PORT:-19092}")
    cports=("${KBRIDGE_KAFKA_CONTROLLER_PORT:-19093}")
    CLUSTER_ID=a2JyaWRnZS1zaW5nbGUtMQ   # base64url("kbridge-single-1")
    RF=1 MIN_ISR=1
    SASL_SSL_PORT=${KBRIDGE_KAFKA_SASL_SSL_PORT:-$((bports[0] + 2))}
    SSL_PORT=${KBRIDGE_KAFKA_SSL_PORT:-$((bports[0] + 3))}
  else
    IFS=, read -r -a bports <<<"${KBRIDGE_KAFKA_CLUSTER_PORTS:-19192,19193,19194}"
    IFS=, read -r -a cports <<<"${KBRIDGE_KAFKA_CLUSTER_CONTROLLER_PORTS:-19195,19196,19197}"
    [[ ${#bports[@]} -eq 3 && ${#cports[@]} -eq 3 ]] \
      || die "KBRIDGE_KAFKA_CLUSTER_PORTS and KBRIDGE_KAFKA_CLUSTER_CONTROLLER_PORTS need 3 ports each"
    CLUSTER_ID=a2JyaWRnZS1jbHVzdGVyMw   # base64url("kbridge-cluster3")
    RF=3 MIN_ISR=2
    SASL_SSL_PORT= SSL_PORT=
  fi
  STATE_DIR=$KAFKA_ROOT/$MODE
  local i
  for i in "${!bports[@]}"; do
    NODE_IDS+=($((i + 1)))
    BROKER_PORT[$((i + 1))]=${bports[$i]}
    CONTROLLER_PORT[$((i + 1))]=${cports[$i]}
  done
}

mode_flag() { if [[ $MODE == cluster ]]; then echo " --cluster"; fi; }
node_dir() { echo "$STATE_DIR/node-$1"; }
pid_file() { echo "$(node_dir "$1")/kafka.pid"; }
log_file() { echo "$(node_dir "$1")/server.log"; }

bootstrap_servers() {
  local id out=()
  for id in "${NODE_IDS[@]}"; do out+=("$HOST:${BROKER_PORT[$id]}"); done
  local IFS=,
  echo "${out[*]}"
}

# Fixed, valid Kafka Uuid (base64url of 16 bytes) for node N's metadata log dir.
dir_uuid() { printf 'kbridge-logdir%02d' "$1" | base64 | tr '+/' '-_' | tr -d '=\n'; }

# "1@host:port:dirid,2@..." - the initial KRaft voter set (dynamic quorum, KIP-853).
initial_controllers() {
  local id out=()
  for id in "${NODE_IDS[@]}"; do out+=("$id@$HOST:${CONTROLLER_PORT[$id]}:$(dir_uuid "$id")"); done
  local IFS=,
  echo "${out[*]}"
}

controller_bootstrap() {
  local id out=()
  for id in "${NODE_IDS[@]}"; do out+=("$HOST:${CONTROLLER_PORT[$id]}"); done
  local IFS=,
  echo "${out[*]}"
}

# ---------------------------------------------------------------- jars
ensure_libs() {
  local stamp
  stamp=$(sha256sum "$POM" | cut -d' ' -f1)
  if [[ -f $LIBS_DIR/.pom.sha256 && $(cat "$LIBS_DIR/.pom.sha256") == "$stamp" ]] \
    && compgen -G "$LIBS_DIR/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
  log "resolving Kafka jars with Maven into $LIBS_DIR"
  local tmp="$LIBS_DIR.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$(dirname "$LIBS_DIR")" "$KAFKA_ROOT"
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
    -DoutputDirectory="$tmp" >"$KAFKA_ROOT/mvn.log" 2>&1; then
    tail -n 40 "$KAFKA_ROOT/mvn.log" >&2
    rm -rf "$tmp"
    die "mvn dependency:copy-dependencies failed (log: $KAFKA_ROOT/mvn.log)"
  fi
  echo "$stamp" >"$tmp/.pom.sha256"
  rm -rf "$LIBS_DIR"
  mv "$tmp" "$LIBS_DIR"
}

# ---------------------------------------------------------------- configs
write_log4j_config() {
  cat >"$STATE_DIR/log4j2.properties" <<EOF
# Generated by scripts/test-kafka.sh. Everything goes to stdout, which is
# redirected to node-N/server.log. Root at $LOG_LEVEL; the startup/shutdown
# lines of KafkaRaftServer stay at INFO because start waits for
# "$READY_MARKER".
status = error
name = kbridge-test-kafka
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = $LOG_LEVEL
rootLogger.appenderRef.stdout.ref = STDOUT
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = INFO
EOF
}

write_server_config() {
  local id=$1 dir
  dir=$(node_dir "$id")
  local listeners="PLAINTEXT://$HOST:${BROKER_PORT[$id]}"
  local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [[ -n $SASL_SSL_PORT ]]; then
    listeners+=",SASL_SSL://$HOST:$SASL_SSL_PORT,SSL://$HOST:$SSL_PORT"
    protocols+=",SASL_SSL:SASL_SSL,SSL:SSL"
  fi
  cat >"$dir/server.properties" <<EOF
# Generated by scripts/test-kafka.sh ($MODE mode, node $id).
process.roles=broker,controller
node.id=$id
listeners=$listeners,CONTROLLER://$HOST:${CONTROLLER_PORT[$id]}
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
controller.quorum.bootstrap.servers=$(controller_bootstrap)
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$RF
offsets.topic.replication.factor=$RF
transaction.state.log.replication.factor=$RF
transaction.state.log.min.isr=$MIN_ISR
share.coordinator.state.topic.replication.factor=$RF
share.coordinator.state.topic.min.isr=$MIN_ISR
group.initial.rebalance.delay.ms=0
# Tests of unknown-topic errors need this off.
auto.create.topics.enable=false
EOF
  if [[ -n $SASL_SSL_PORT ]]; then
    cat >>"$dir/server.properties" <<EOF
# The secured listeners (see the head of scripts/test-kafka.sh).
ssl.keystore.type=PEM
ssl.keystore.location=$CERTS_DIR/server-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$CERTS_DIR/ca.pem
listener.name.ssl.ssl.client.auth=required
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$PLAIN_USER="$PLAIN_PASSWORD";
EOF
  fi
  printf '%s\n' "${KBRIDGE_KAFKA_EXTRA_PROPS:-}" >>"$dir/server.properties"
}

java_base() {
  # shellcheck disable=SC2206
  local heap=($HEAP_OPTS) extra=(${KBRIDGE_KAFKA_JVM_OPTS:-})
  JAVA_CMD=("$JAVA" "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
    "-Dlog4j2.configurationFile=$STATE_DIR/log4j2.properties"
    "${extra[@]}" -cp "$LIBS_DIR/*")
}

# Formats node N's fresh data dir. Every node gets the same initial voter set,
# so single and cluster mode share this path (single = a 1-voter quorum).
format_node() {
  local id=$1 dir
  dir=$(node_dir "$id")
  java_base
  # The formatter needs less heap than the broker.
  local scram=()
  [[ -n $SASL_SSL_PORT ]] \
    && scram=(--add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]")
  if ! "${JAVA_CMD[@]/#-Xms*/-Xms64m}" kafka.tools.StorageTool format \
    -t "$CLUSTER_ID" -c "$dir/server.properties" "${scram[@]}" \
    --initial-controllers "$(initial_controllers)" >"$dir/format.log" 2>&1; then
    log "formatting node $id failed:"
    tail -n 30 "$dir/format.log" >&2
    return 1
  fi
}

# ---------------------------------------------------------------- processes
# Prints the pid of node N if it is alive and really our Kafka for that node.
node_pid() {
  local pf pid
  pf=$(pid_file "$1")
  [[ -f $pf ]] || return 1
  pid=$(<"$pf")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null \
    | grep -qF "kafka.Kafka $(node_dir "$1")/server.properties" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Node N is ready: process alive, broker port accepts connections and, since
# this process was launched, the log says "Kafka Server started".
node_ready() {
  local id=$1 off=0 dir
  dir=$(node_dir "$id")
  node_pid "$id" >/dev/null || return 1
  port_open "${BROKER_PORT[$id]}" || return 1
  [[ -f $dir/log.offset ]] && off=$(<"$dir/log.offset")
  tail -c "+$((off + 1))" "$(log_file "$id")" 2>/dev/null | grep -qF "$READY_MARKER"
}

check_ports_free() {
  local id port
  for id in "$@"; do
    for port in "${BROKER_PORT[$id]}" "${CONTROLLER_PORT[$id]}" $SASL_SSL_PORT $SSL_PORT; do
      ! port_open "$port" || die "port $port is already in use (another broker? try: $0 stop$(mode_flag))"
    done
  done
}

launch_node() {
  local id=$1 dir lf port
  dir=$(node_dir "$id")
  lf=$(log_file "$id")
  check_ports_free "$id"
  touch "$lf"
  stat -c %s "$lf" >"$dir/log.offset"
  java_base
  local pf i
  pf=$(pid_file "$id")
  rm -f "$pf"
  # Own session (setsid -f) + nohup: the broker outlives the calling shell or
  # test runner and its process group. The child writes its own pid and then
  # execs java, so the pid file holds the JVM's pid. 9>&- : do not hand the
  # start lock to the broker.
  # shellcheck disable=SC2016  # $$, $0, $@ are for the inner sh
  setsid -f /bin/sh -c 'echo $$ >"$0"; exec "$@"' "$pf" \
    nohup "${JAVA_CMD[@]}" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$lf" 2>&1 9>&-
  for i in $(seq 50); do [[ -s $pf ]] && break; sleep 0.1; done
  [[ -s $pf ]] || die "node $id: no pid file after launch"
  log "node $id starting (pid $(<"$pf")), broker $HOST:${BROKER_PORT[$id]}, log $lf"
}

# Error lines, then the tail, of node N's log since its last launch.
show_log() {
  local id=$1 off=0 dir lf
  dir=$(node_dir "$id")
  lf=$(log_file "$id")
  [[ -f $dir/log.offset ]] && off=$(<"$dir/log.offset")
  log "--- $lf: ERROR lines"
  tail -c "+$((off + 1))" "$lf" 2>/dev/null | grep -E '\] (ERROR|FATAL) |Exception' | head -n 10 >&2 || true
  log "--- $lf: last lines"
  tail -c "+$((off + 1))" "$lf" 2>/dev/null | tail -n 30 >&2 || true
  log "---"
}

# Waits until all given nodes are ready; on failure shows their logs and fails.
wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT)) id pending
  while :; do
    pending=()
    for id in "$@"; do
      node_ready "$id" && continue
      if ! node_pid "$id" >/dev/null; then
        log "node $id exited during startup"
        show_log "$id"
        return 1
      fi
      pending+=("$id")
    done
    [[ ${#pending[@]} -eq 0 ]] && return 0
    if ((SECONDS >= deadline)); then
      for id in "${pending[@]}"; do
        log "node $id not ready after ${START_TIMEOUT}s"
        show_log "$id"
      done
      return 1
    fi
    sleep 0.2
  done
}

stop_nodes() {
  local id pid pids=() deadline
  for id in "$@"; do
    if pid=$(node_pid "$id"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$id:$pid")
    fi
  done
  deadline=$((SECONDS + STOP_TIMEOUT))
  for entry in "${pids[@]}"; do
    id=${entry%%:*} pid=${entry#*:}
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "node $id (pid $pid) ignored TERM for ${STOP_TIMEOUT}s, killing"
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    log "node $id stopped"
  done
  for id in "$@"; do rm -f "$(pid_file "$id")"; done
}

# Serialise start/stop of one mode (e.g. parallel test processes).
take_lock() {
  mkdir -p "$STATE_DIR"
  exec 9>"$STATE_DIR/.lock"
  flock -w "$((START_TIMEOUT + STOP_TIMEOUT))" 9 || die "could not lock $STATE_DIR/.lock"
}

# ---------------------------------------------------------------- commands
fresh_start() {
  local id
  stop_nodes "${NODE_IDS[@]}"
  check_ports_free "${NODE_IDS[@]}"
  ensure_libs
  for id in "${NODE_IDS[@]}"; do
    rm -rf "$(node_dir "$id")"
    mkdir -p "$(node_dir "$id")"
  done
  write_log4j_config
  [[ -z $SASL_SSL_PORT ]] || "$SCRIPT_DIR/test-certs.sh" "$CERTS_DIR"
  for id in "${NODE_IDS[@]}"; do write_server_config "$id"; done
  # Format in parallel (one JVM each).
  local fpids=() failed=0
  for id in "${NODE_IDS[@]}"; do format_node "$id" & fpids+=($!); done
  for id in "${fpids[@]}"; do wait "$id" || failed=1; done
  ((failed == 0)) || die "formatting failed"
  for id in "${NODE_IDS[@]}"; do launch_node "$id"; done
}

cmd_start() {
  local node=$1 id t0=$SECONDS missing=() alive=0
  take_lock
  if [[ -n $node ]]; then
    [[ -f $(node_dir "$node")/data/meta.properties ]] \
      || die "node $node was never formatted; run '$0 start$(mode_flag)' first"
    if ! node_pid "$node" >/dev/null; then
      ensure_libs
      launch_node "$node"
    fi
    wait_ready "$node" || die "node $node did not start"
    log "node $node ready"
    return 0
  fi
  for id in "${NODE_IDS[@]}"; do
    if node_pid "$id" >/dev/null; then alive=$((alive + 1)); else missing+=("$id"); fi
  done
  if ((alive == 0)); then
    fresh_start
  elif ((${#missing[@]} > 0)); then
    # Part of the cluster is up (e.g. after a failover test): bring back the
    # rest with their data; a node without data means a broken state -> fresh.
    for id in "${missing[@]}"; do
      [[ -f $(node_dir "$id")/data/meta.properties ]] || { fresh_start; missing=(); break; }
    done
    for id in "${missing[@]}"; do ensure_libs; launch_node "$id"; done
  fi
  if ! wait_ready "${NODE_IDS[@]}"; then
    stop_nodes "${NODE_IDS[@]}"
    die "Kafka ($MODE) did not start"
  fi
  if ((alive == ${#NODE_IDS[@]})) && ((SECONDS - t0 < 1)); then
    log "already running ($MODE) at $(bootstrap_servers)"
  else
    log "ready ($MODE) at $(bootstrap_servers) after $((SECONDS - t0))s"
  fi
}

cmd_stop() {
  local node=$1
  take_lock
  if [[ -n $node ]]; then stop_nodes "$node"; else stop_nodes "${NODE_IDS[@]}"; fi
}

cmd_status() {
  local id pid up=0
  for id in "${NODE_IDS[@]}"; do
    if pid=$(node_pid "$id"); then
      if port_open "${BROKER_PORT[$id]}"; then
        echo "node $id: running (pid $pid) at $HOST:${BROKER_PORT[$id]}"
        up=$((up + 1))
      else
        echo "node $id: starting (pid $pid), $HOST:${BROKER_PORT[$id]} not answering yet"
      fi
    else
      echo "node $id: not running"
    fi
  done
  if ((up == ${#NODE_IDS[@]})); then
    echo "Kafka ($MODE): running, bootstrap $(bootstrap_servers)"
    return 0
  fi
  echo "Kafka ($MODE): not running ($up/${#NODE_IDS[@]} nodes up), bootstrap $(bootstrap_servers)"
  return 1
}

cmd_env() {
  echo "export KBRIDGE_TEST_BROKERS=$(bootstrap_servers)"
  [[ $MODE == cluster ]] && echo "export KBRIDGE_TEST_CLUSTER_BROKERS=$(bootstrap_servers)"
  if [[ -n $SASL_SSL_PORT ]]; then
    echo "export KBRIDGE_TEST_SASL_SSL_BROKERS=$HOST:$SASL_SSL_PORT"
    echo "export KBRIDGE_TEST_SSL_BROKERS=$HOST:$SSL_PORT"
    echo "export KBRIDGE_TEST_CERTS=$CERTS_DIR"
  fi
  return 0
}

main() {
  [[ $# -ge 1 ]] || usage
  local cmd=$1 mode=single node="" all=""
  shift
  while [[ $# -gt 0 ]]; do
    case $1 in
      --cluster) mode=cluster ;;
      --all) all=1 ;;
      --node)
        [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || die "--node needs a node id"
        node=$2
        shift
        ;;
      -h | --help) usage ;;
      *) die "unknown argument: $1" ;;
    esac
    shift
  done
  if [[ -n $all ]]; then
    [[ $cmd == stop && $mode == single && -z $node ]] || die "--all goes with stop alone"
    "${BASH_SOURCE[0]}" stop
    "${BASH_SOURCE[0]}" stop --cluster
    return
  fi
  select_mode "$mode"
  if [[ -n $node && -z ${BROKER_PORT[$node]:-} ]]; then
    die "no node $node in $mode mode (nodes: ${NODE_IDS[*]})"
  fi
  case $cmd in
    start) cmd_start "$node" ;;
    stop) cmd_stop "$node" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    -h | --help | help) usage ;;
    *) die "unknown command: $cmd" ;;
  esac
}

main "$@"
