#!/usr/bin/env bash
# Start (or check) a real single-node SLURM on this machine: munge + slurmctld + slurmd.
# Used by tests/end_to_end/test_workflows.py's fixture and by .ci/run. Needs root and Debian's
# slurm-wlm and munge packages. Idempotent: a second call finds it running.
# Usage: .ci/slurm.sh start | status | stop
set -euo pipefail
action=${1:-start}
conf_dir=/etc/slurm
node=$(hostname)

status() { sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

case "$action" in
  status) status ;;
  stop)
    pkill -x slurmd || true; pkill -x slurmctld || true ;;
  start)
    if status; then exit 0; fi
    command -v slurmctld >/dev/null || { echo "slurm-wlm is not installed" >&2; exit 3; }
    # munge: the key must exist and belong to the munge user.
    mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
    [ -s /etc/munge/munge.key ] || mungekey -c -f -k /etc/munge/munge.key
    chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
    chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
    pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged
    mkdir -p "$conf_dir" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    # No cgroup.conf at all: CgroupPlugin=disabled is unknown to 22.05 and slurmd fails.
    rm -f "$conf_dir/cgroup.conf"
    # getconf, not nproc: nproc obeys OMP_NUM_THREADS, and a node of 1 CPU never runs
    # the 2-task test job.
    mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
    cat > "$conf_dir/slurm.conf" <<CONF
ClusterName=ssimci
SlurmctldHost=$node
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
NodeName=$node CPUs=$(getconf _NPROCESSORS_ONLN) RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
    pgrep -x slurmctld >/dev/null || slurmctld
    pgrep -x slurmd >/dev/null || slurmd
    for _ in $(seq 1 30); do
      status && exit 0
      scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true
      sleep 1
    done
    echo "SLURM did not report an idle node within 30 s" >&2
    sinfo >&2 || true
    exit 4 ;;
  *) echo "usage: $0 start|status|stop" >&2; exit 2 ;;
esac
