#!/usr/bin/env bash
# A one-node Slurm on this machine, for the tests and for trying deploy/slurm/ by hand:
# Debian's slurm-wlm and munge, this host as the only node with its real CPU count and memory.
#
#   deploy/slurm/local-cluster.sh start   # writes /etc/slurm/slurm.conf, starts munged, slurmctld, slurmd
#   deploy/slurm/local-cluster.sh status  # sinfo
#   deploy/slurm/local-cluster.sh stop    # stops the daemons it started
#
# Needs root (the daemons run as root here) and `apt-get install slurm-wlm munge`. `start` waits
# until the node is idle and fails, with the daemons' logs, when it does not come up.
set -euo pipefail
state=/var/lib/imgclf-slurm
conf=/etc/slurm/slurm.conf

start() {
    command -v slurmctld >/dev/null && command -v munged >/dev/null \
        || { echo "slurm-wlm and munge are not installed (apt-get install slurm-wlm munge)" >&2; exit 1; }
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    mkdir -p "$state"/{ctld,d} /var/log/slurm /etc/slurm /run/munge
    cat > "$conf" <<EOF
# written by deploy/slurm/local-cluster.sh: one node, this machine
ClusterName=imgclf
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
# a job that asks for more than this node has is refused at submission, not left pending
EnforcePartLimits=ALL
SlurmdTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
    chown munge:munge /etc/munge/munge.key /run/munge 2>/dev/null || true
    chmod 0400 /etc/munge/munge.key
    pgrep -x munged >/dev/null || munged --force 2>/dev/null || su -s /bin/sh munge -c "munged --force"
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 1 60); do
        if sinfo -h -o '%T' 2>/dev/null | grep -qE '^idle'; then
            sinfo
            return 0
        fi
        sleep 1
    done
    echo "the Slurm node did not become idle within 60 s; logs:" >&2
    tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
    sinfo >&2 || true
    exit 1
}

stop() {
    for daemon in slurmd slurmctld munged; do
        pkill -x "$daemon" 2>/dev/null || true
    done
    for _ in $(seq 1 20); do
        pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || return 0
        sleep 0.5
    done
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *) echo "usage: $0 start|status|stop" >&2; exit 2 ;;
esac
