#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost, for tests and for trying sweeps on a workstation.
#
#   bash slurm/local-cluster.sh up       install (if absent), configure, start, wait until the node is idle
#   bash slurm/local-cluster.sh status   daemons, node state and queue
#   bash slurm/local-cluster.sh down     cancel jobs, stop the daemons this script started (by recorded PID)
#
# Everything lives under $BENCH_SLURM_DIR (default /tmp/bench-slurm): slurm.conf, state and
# spool folders, logs and PID files. Client commands (sinfo, sbatch, ...) find the config through
# /etc/slurm/slurm.conf, which `up` makes a symlink to our file; an existing, foreign
# /etc/slurm/slurm.conf is never overwritten (export SLURM_CONF=$BENCH_SLURM_DIR/slurm.conf then).
# There is no systemd here: munged, slurmctld and slurmd run as plain background processes.
# Both `up` and `down` are idempotent.
set -euo pipefail

STATE_DIR="${BENCH_SLURM_DIR:-/tmp/bench-slurm}"
CONF="$STATE_DIR/slurm.conf"
SYSTEM_CONF="/etc/slurm/slurm.conf"
NODE="$(hostname -s)"
IDLE_TIMEOUT_S="${BENCH_SLURM_IDLE_TIMEOUT_S:-90}"

log() { echo "local-cluster: $*" >&2; }

# a prefix, not a function: `"${AS_ROOT[@]}" cmd &` must leave the daemon's own PID in $!
if [ "$(id -u)" -eq 0 ]; then AS_ROOT=(); else AS_ROOT=(sudo); fi
as_root() { "${AS_ROOT[@]}" "$@"; }

pid_alive() {  # pid_alive NAME: the process recorded in NAME.pid runs and is NAME (not a reused PID)
  local file="$STATE_DIR/$1.pid"
  [ -f "$file" ] && [ "$(cat "/proc/$(cat "$file")/comm" 2>/dev/null)" = "$1" ]
}

install_packages() {
  local missing=()
  command -v munged >/dev/null || missing+=(munge)
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sinfo >/dev/null || missing+=(slurm-client)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      slurmctld slurmd slurm-client munge >/dev/null
  fi
}

write_config() {
  mkdir -p "$STATE_DIR"/{ctld,spool,log}
  local cpus mem
  cpus="$(nproc)"
  # RealMemory as slurmd itself measures it, so the node is never marked "low memory"
  mem="$(slurmd -C 2>/dev/null | tr ' ' '\n' | sed -n 's/^RealMemory=//p')"
  mem="${mem:-1000}"
  cat >"$CONF.tmp" <<EOF
# Written by slurm/local-cluster.sh: a single-node cluster on localhost.
ClusterName=bench-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
EnforcePartLimits=ALL
KillWait=5
MailProg=/bin/true
ReturnToService=2
SchedulerParameters=batch_sched_delay=0,sched_interval=5,bf_interval=5
StateSaveLocation=$STATE_DIR/ctld
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/slurmctld.daemon.pid
SlurmdPidFile=$STATE_DIR/slurmd.daemon.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
  as_root mkdir -p "$(dirname "$SYSTEM_CONF")"
  if [ -L "$SYSTEM_CONF" ] || [ ! -e "$SYSTEM_CONF" ]; then
    as_root ln -sfn "$CONF" "$SYSTEM_CONF"
  elif [ "$(readlink -f "$SYSTEM_CONF")" != "$(readlink -f "$CONF")" ]; then
    log "keeping the existing $SYSTEM_CONF; clients need: export SLURM_CONF=$CONF"
  fi
}

start_munge() {
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    return  # a working munged already runs (ours or the system's)
  fi
  as_root mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
  if [ ! -s /etc/munge/munge.key ]; then
    as_root sh -c 'dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null'
  fi
  as_root chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
  as_root chmod 0700 /etc/munge /var/lib/munge /var/log/munge
  as_root chmod 0755 /run/munge
  as_root chmod 0400 /etc/munge/munge.key
  # --foreground, and setsid/setpriv exec rather than fork: the PID we record is the daemon's
  "${AS_ROOT[@]}" setsid setpriv --reuid=munge --regid=munge --init-groups munged --foreground \
    >"$STATE_DIR/log/munged.out" 2>&1 &
  echo $! >"$STATE_DIR/munged.pid"
  for _ in $(seq 50); do
    munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return
    sleep 0.1
  done
  log "munged did not start; see $STATE_DIR/log/munged.out"
  exit 1
}

start_daemon() {  # start_daemon NAME: slurmctld or slurmd in the foreground (-D), backgrounded here
  local name="$1"
  if pid_alive "$name"; then
    return
  fi
  local extra=()
  # -c: start with an empty queue, so jobs left by an earlier session are never run again
  [ "$name" = slurmctld ] && extra=(-c)
  "${AS_ROOT[@]}" setsid "$name" -D -f "$CONF" "${extra[@]}" >"$STATE_DIR/log/$name.out" 2>&1 &
  echo $! >"$STATE_DIR/$name.pid"
}

wait_idle() {
  local state=""
  for _ in $(seq $((IDLE_TIMEOUT_S * 2))); do
    state="$(SLURM_CONF="$CONF" sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1 || true)"
    case "$state" in
      idle|mixed|allocated) log "node $NODE is $state"; return ;;
      down*|drain*)
        SLURM_CONF="$CONF" scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  log "node $NODE not idle after ${IDLE_TIMEOUT_S}s (state: '${state:-no answer}'); logs in $STATE_DIR/log"
  exit 1
}

stop_pid() {  # stop_pid NAME: TERM, wait up to 10 s, then KILL the recorded process
  local file="$STATE_DIR/$1.pid"
  [ -f "$file" ] || return 0
  local pid
  pid="$(cat "$file")"
  if pid_alive "$1"; then
    as_root kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && as_root kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

cmd_up() {
  install_packages
  mkdir -p "$STATE_DIR/log"
  write_config
  start_munge
  start_daemon slurmctld
  # slurmd registers with the controller; start it once the controller answers
  for _ in $(seq 40); do
    SLURM_CONF="$CONF" scontrol ping 2>/dev/null | grep -q UP && break
    sleep 0.25
  done
  start_daemon slurmd
  wait_idle
}

cmd_down() {
  if pid_alive slurmctld; then
    SLURM_CONF="$CONF" scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
  fi
  stop_pid slurmd
  stop_pid slurmctld
  stop_pid munged
  log "stopped"
}

cmd_status() {
  for name in munged slurmctld slurmd; do
    if pid_alive "$name"; then echo "$name: running (pid $(cat "$STATE_DIR/$name.pid"))"
    else echo "$name: not started by this script"; fi
  done
  SLURM_CONF="$CONF" sinfo 2>/dev/null || echo "sinfo: no controller reachable"
  SLURM_CONF="$CONF" squeue 2>/dev/null || true
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 {up|down|status}" >&2; exit 2 ;;
esac
