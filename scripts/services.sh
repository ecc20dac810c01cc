#!/usr/bin/env bash
# The services the integration tests need, without systemd:
#   dockerd                 the Docker daemon (log: /var/log/gpubundle-ci/dockerd.log)
#   docker-registry         Debian's registry with our own config: 127.0.0.1:5000, no auth,
#                           storage under /var/lib/gpubundle-ci/registry
# Usage: bash scripts/services.sh start|stop|status
#        bash scripts/services.sh run -- COMMAND [ARG...]
# `start` is idempotent: a service that already answers is left alone.
# `run` starts what is not running, runs COMMAND, then stops only what it started
# (`make test` runs the tests this way) and exits with COMMAND's status.
set -euo pipefail

LOG_DIR=/var/log/gpubundle-ci
RUN_DIR=/run/gpubundle-ci
STATE_DIR=/var/lib/gpubundle-ci
REGISTRY_ADDR=127.0.0.1:5000
REGISTRY_CONFIG=$RUN_DIR/registry.yml
DOCKERD_PID=$RUN_DIR/dockerd.pid
REGISTRY_PID=$RUN_DIR/registry.pid
WAIT_SECONDS=${GPUBUNDLE_SERVICES_TIMEOUT:-60}
# dockerd's own bridge. Not docker0: any dockerd started with --bridge=none (tests run
# private daemons) deletes docker0, which would break every container of this one.
BRIDGE=gpubundle0
BRIDGE_ADDR=172.29.0.1/16

die() {
    echo "services.sh: error: $1" >&2
    [ -n "${2:-}" ] && echo "services.sh: hint: $2" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "dockerd and the registry must be started as root" \
        "run: sudo bash scripts/services.sh $1"
}

docker_up() { docker info >/dev/null 2>&1; }
registry_up() {
    python3 - "$REGISTRY_ADDR" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=2).read()
EOF
}

# wait_for NAME CHECK LOGFILE: poll CHECK until it succeeds, or fail with the log's tail.
wait_for() {
    local name=$1 check=$2 logfile=$3 waited=0
    until "$check"; do
        if [ "$waited" -ge "$WAIT_SECONDS" ]; then
            echo "--- last lines of $logfile ---" >&2
            tail -n 30 "$logfile" >&2 || true
            die "$name did not answer within ${WAIT_SECONDS}s" "read $logfile"
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

ensure_bridge() {
    command -v ip >/dev/null || die "ip not found" "apt-get install iproute2"
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
        ip addr add "$BRIDGE_ADDR" dev "$BRIDGE"
    fi
    ip link set "$BRIDGE" up
}

start_dockerd() {
    ensure_bridge
    if docker_up; then
        echo "dockerd: already running"
        return
    fi
    command -v dockerd >/dev/null || die "dockerd not found" "apt-get install docker.io"
    if pid_alive "$DOCKERD_PID"; then
        echo "dockerd: started earlier (pid $(cat "$DOCKERD_PID")), waiting for it"
    else
        # A stale pidfile from a killed daemon makes dockerd refuse to start.
        [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null \
            && rm -f /var/run/docker.pid
        setsid dockerd --pidfile "$DOCKERD_PID" --bridge "$BRIDGE" \
            >>"$LOG_DIR/dockerd.log" 2>&1 </dev/null &
        echo "dockerd: starting (log $LOG_DIR/dockerd.log)"
    fi
    wait_for dockerd docker_up "$LOG_DIR/dockerd.log"
    echo "dockerd: running"
}

write_registry_config() {
    cat >"$REGISTRY_CONFIG" <<EOF
# Written by scripts/services.sh: loopback only, no auth, for tests.
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
}

start_registry() {
    if registry_up; then
        echo "registry: already running on $REGISTRY_ADDR"
        return
    fi
    [ -x /usr/bin/docker-registry ] || die "/usr/bin/docker-registry not found" \
        "apt-get install docker-registry"
    mkdir -p "$STATE_DIR/registry"
    write_registry_config
    if pid_alive "$REGISTRY_PID"; then
        echo "registry: started earlier (pid $(cat "$REGISTRY_PID")), waiting for it"
    else
        setsid /usr/bin/docker-registry serve "$REGISTRY_CONFIG" \
            >>"$LOG_DIR/registry.log" 2>&1 </dev/null &
        echo $! >"$REGISTRY_PID"
        echo "registry: starting on $REGISTRY_ADDR (log $LOG_DIR/registry.log)"
    fi
    wait_for registry registry_up "$LOG_DIR/registry.log"
    echo "registry: running on $REGISTRY_ADDR"
}

# stop_pid NAME PIDFILE: TERM, wait up to 20 s, then KILL.
stop_pid() {
    local name=$1 pidfile=$2 pid i
    if ! pid_alive "$pidfile"; then
        echo "$name: not running (not started by this script)"
        rm -f "$pidfile"
        return
    fi
    pid=$(cat "$pidfile")
    kill "$pid"
    for i in $(seq 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$pidfile"
    echo "$name: stopped"
}

status() {
    local rc=0
    if docker_up; then echo "dockerd: running"; else echo "dockerd: not running"; rc=1; fi
    if registry_up; then echo "registry: running on $REGISTRY_ADDR"; else
        echo "registry: not running"; rc=1
    fi
    return $rc
}

case "${1:-}" in
start)
    need_root start
    mkdir -p "$LOG_DIR" "$RUN_DIR" "$STATE_DIR"
    start_dockerd
    start_registry
    ;;
stop)
    need_root stop
    stop_pid registry "$REGISTRY_PID"
    stop_pid dockerd "$DOCKERD_PID"
    ;;
status)
    status
    ;;
run)
    shift
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || { echo "usage: $0 run -- COMMAND [ARG...]" >&2; exit 2; }
    need_root run
    mkdir -p "$LOG_DIR" "$RUN_DIR" "$STATE_DIR"
    docker_was_up=0; registry_was_up=0
    docker_up && docker_was_up=1
    registry_up && registry_was_up=1
    start_dockerd
    start_registry
    rc=0
    "$@" || rc=$?
    [ $registry_was_up -eq 1 ] || stop_pid registry "$REGISTRY_PID"
    [ $docker_was_up -eq 1 ] || stop_pid dockerd "$DOCKERD_PID"
    exit $rc
    ;;
*)
    echo "usage: $0 start|stop|status|run -- COMMAND" >&2
    exit 2
    ;;
esac
