#!/usr/bin/env bash
# Single-node SLURM on localhost, for tests and CI.
#
#   bash scripts/slurm-local.sh start    # install (if needed) and start munged, slurmctld, slurmd
#   eval "$(bash scripts/slurm-local.sh env)"   # export SLURM_CONF for sbatch/srun/sinfo
#   bash scripts/slurm-local.sh status   # exit 0 when the cluster answers and the node is usable
#   bash scripts/slurm-local.sh stop     # cancel jobs, stop the daemons this script started
#   bash scripts/slurm-local.sh clean    # stop, then delete the state/log dir
#
# Settings (environment):
#   SLURM_LOCAL_DIR      state, spool, logs, pid files, slurm.conf   [/tmp/agileflex-slurm]
#   SLURM_LOCAL_CPUS     CPUs advertised for the node (config_overrides) [8]
#   SLURM_LOCAL_MEM_MB   RealMemory advertised, MB   [max(what `slurmd -C` reports, 32768)]
#   SLURM_LOCAL_CLUSTER  ClusterName                        [agileflex]
#   SLURM_LOCAL_CTLD_PORT / SLURM_LOCAL_SLURMD_PORT         [6817 / 6818]
#   SLURM_LOCAL_TIMEOUT  seconds to wait for the node to become idle [60]
#
# Needs root, or passwordless sudo (daemons run as root, munged as user munge).
# Installs the Debian packages slurm-wlm slurmctld slurmd slurm-client munge when missing.
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/agileflex-slurm}
CONF=$DIR/slurm.conf
CPUS=${SLURM_LOCAL_CPUS:-8}
CLUSTER=${SLURM_LOCAL_CLUSTER:-agileflex}
CTLD_PORT=${SLURM_LOCAL_CTLD_PORT:-6817}
SLURMD_PORT=${SLURM_LOCAL_SLURMD_PORT:-6818}
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
PKGS=(slurm-wlm slurmctld slurmd slurm-client munge)

export PATH=$PATH:/usr/sbin:/sbin
export SLURM_CONF=$CONF

if [[ $EUID -eq 0 ]]; then
    SUDO=()
else
    SUDO=(sudo -n)
fi

log() { printf 'slurm-local: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------- install
installed() {
    local b
    for b in slurmctld slurmd sbatch srun sinfo scontrol squeue scancel munged munge unmunge; do
        command -v "$b" >/dev/null 2>&1 || return 1
    done
}

install_packages() {
    installed && return 0
    command -v apt-get >/dev/null 2>&1 ||
        die "SLURM/munge not installed and no apt-get here: install ${PKGS[*]} yourself"
    [[ $EUID -eq 0 ]] || command -v sudo >/dev/null 2>&1 || die "need root or sudo to install ${PKGS[*]}"
    log "installing ${PKGS[*]} ..."
    local aptlog
    aptlog=$(mktemp /tmp/slurm-local-apt.XXXXXX.log)
    if ! { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${PKGS[@]}"; } >"$aptlog" 2>&1; then
        tail -n 30 "$aptlog" >&2
        die "apt-get failed (full log: $aptlog)"
    fi
    rm -f "$aptlog"
    installed || die "packages installed but SLURM binaries still missing"
}

# ---------------------------------------------------------------------------- helpers
# pid from a pid file if that process is alive and is the named program
live_pid() {  # file comm
    local f=$1 comm=$2 pid
    [[ -r $f ]] || return 1
    pid=$(tr -dc '0-9' <"$f")
    [[ -n $pid ]] && alive "$pid" || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || return 1
    echo "$pid"
}

# process exists and is not a zombie (an exited daemon can stay a zombie for a while)
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != [ZX] ]]
}

# something listens on the controller port (sinfo itself retries for ~10 s when nothing does)
ctld_port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$CTLD_PORT" 2>/dev/null; }
ctld_answers() { ctld_port_open && timeout 15 sinfo -h -o %P >/dev/null 2>&1; }

node_name() {
    if [[ -r $DIR/nodename ]]; then cat "$DIR/nodename"; else slurmd -C | sed -n 's/^NodeName=\([^ ]*\).*/\1/p'; fi
}

node_state() { timeout 15 sinfo -h -N -n "$(node_name)" -o %T 2>/dev/null | head -n1; }

print_logs() {
    local f
    for f in "$DIR"/log/slurmctld.log "$DIR"/log/slurmd.log /var/log/munge/munged.log; do
        [[ -r $f ]] || continue
        log "----- last lines of $f -----"
        tail -n 25 "$f" >&2
    done
}

# ---------------------------------------------------------------------------- munge
munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if munge_ok; then
        log "munged: already running"
        return 0
    fi
    id munge >/dev/null 2>&1 || die "user munge missing (is the munge package installed?)"
    "${SUDO[@]}" install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
    "${SUDO[@]}" install -d -o munge -g munge -m 0755 /run/munge
    if ! "${SUDO[@]}" test -s /etc/munge/munge.key; then
        log "creating /etc/munge/munge.key"
        "${SUDO[@]}" dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    "${SUDO[@]}" chown munge:munge /etc/munge/munge.key
    "${SUDO[@]}" chmod 0400 /etc/munge/munge.key
    if [[ $EUID -eq 0 ]]; then
        runuser -u munge -- munged --force
    else
        sudo -n -u munge "$(command -v munged)" --force
    fi
    local i
    for ((i = 0; i < 50; i++)); do
        munge_ok && break
        sleep 0.2
    done
    munge_ok || fail_start "munged did not come up"
    # remember that we started it, so that stop only stops our own munged
    "${SUDO[@]}" cp /run/munge/munged.pid "$DIR/munged.pid"
    log "munged: started (pid $(cat "$DIR/munged.pid"))"
}

# ---------------------------------------------------------------------------- config
write_conf() {
    local c node mem host tmp
    c=$(slurmd -C | head -n1)
    node=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$c")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$c")
    # memory is not a consumable resource here (CR_Core, no cgroups): advertising at least 32 GB
    # only keeps jobs with the scripts' --mem-per-cpu defaults from being rejected on small CI VMs
    mem=${mem:-0}
    ((mem >= 32768)) || mem=32768
    mem=${SLURM_LOCAL_MEM_MB:-$mem}
    host=$(hostname -s)
    [[ -n $node ]] || die "cannot read the node name from 'slurmd -C': $c"
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
# Generated by scripts/slurm-local.sh $(date -Is) -- local single-node test cluster.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$DIR/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=pmi2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
# keep finished jobs visible to 'scontrol show job' for an hour (no slurmdbd, so no sacct)
MinJobAge=3600
ReturnToService=2
InactiveLimit=0
KillWait=5
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=60
# advertise more CPUs than the machine has, so that 3-4 rank jobs and arrays run together
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$host CPUs=$CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    "${SUDO[@]}" install -m 0644 "$tmp" "$CONF"
    rm -f "$tmp"
    "${SUDO[@]}" touch "$DIR/plugstack.conf"
    "${SUDO[@]}" chmod 0644 "$DIR/plugstack.conf"
    echo "$node" | "${SUDO[@]}" tee "$DIR/nodename" >/dev/null
}

# ---------------------------------------------------------------------------- start/stop
wait_node_up() {
    local deadline=$((SECONDS + TIMEOUT)) st="" resumed=0
    while ((SECONDS < deadline)); do
        live_pid "$DIR/slurmd.pid" slurmd >/dev/null || { log "ERROR: slurmd exited"; return 1; }
        live_pid "$DIR/slurmctld.pid" slurmctld >/dev/null || { log "ERROR: slurmctld exited"; return 1; }
        st=$(node_state || true)
        case $st in
            idle | mixed | allocated | completing) return 0 ;;
            down | drained | draining | drain)
                # slurmd answers but the node kept an old DOWN/DRAIN state: resume it once
                if ((resumed == 0)); then
                    "${SUDO[@]}" env SLURM_CONF="$CONF" scontrol update NodeName="$(node_name)" State=RESUME >/dev/null 2>&1 || true
                    resumed=1
                fi
                ;;
        esac
        sleep 0.5
    done
    log "ERROR: node $(node_name) not idle after ${TIMEOUT}s (state: '${st:-no answer}')"
    timeout 10 sinfo -N -l >&2 2>&1 || true
    return 1
}

# print the logs, stop whatever was started, exit 1
fail_start() {
    print_logs
    log "ERROR: $*"
    log "stopping the daemons again (logs stay in $DIR/log)"
    cmd_stop || true
    log "ERROR: start failed: $*"
    exit 1
}

cmd_start() {
    install_packages
    if live_pid "$DIR/slurmctld.pid" slurmctld >/dev/null && live_pid "$DIR/slurmd.pid" slurmd >/dev/null &&
        ctld_answers && [[ $(node_state || true) =~ ^(idle|mixed|allocated|completing)$ ]]; then
        log "already running (SLURM_CONF=$CONF)"
        return 0
    fi
    "${SUDO[@]}" mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
    "${SUDO[@]}" chmod 0755 "$DIR" "$DIR/log"
    start_munge

    local ctld slurmd_pid i
    ctld=$(live_pid "$DIR/slurmctld.pid" slurmctld || true)
    slurmd_pid=$(live_pid "$DIR/slurmd.pid" slurmd || true)
    if [[ -z $ctld && -z $slurmd_pid ]]; then
        write_conf
    fi
    if [[ -z $ctld ]]; then
        if ctld_port_open; then
            die "another slurmctld (or other program) already listens on port $CTLD_PORT (not ours: no live pid in $DIR/slurmctld.pid); stop it or set SLURM_LOCAL_CTLD_PORT/SLURM_LOCAL_SLURMD_PORT"
        fi
        "${SUDO[@]}" rm -f "$DIR/slurmctld.pid"
        "${SUDO[@]}" env SLURM_CONF="$CONF" slurmctld -f "$CONF" ||
            fail_start "slurmctld failed to start"
        for ((i = 0; i < 100; i++)); do
            ctld_answers && break
            sleep 0.2
        done
        ctld=$(live_pid "$DIR/slurmctld.pid" slurmctld || true)
        if [[ -z $ctld ]] || ! ctld_answers; then fail_start "slurmctld did not come up"; fi
        log "slurmctld: started (pid $ctld)"
    else
        log "slurmctld: already running (pid $ctld)"
    fi
    if [[ -z $slurmd_pid ]]; then
        "${SUDO[@]}" rm -f "$DIR/slurmd.pid"
        "${SUDO[@]}" env SLURM_CONF="$CONF" slurmd -f "$CONF" -N "$(node_name)" ||
            fail_start "slurmd failed to start"
        for ((i = 0; i < 50; i++)); do
            slurmd_pid=$(live_pid "$DIR/slurmd.pid" slurmd || true)
            [[ -n $slurmd_pid ]] && break
            sleep 0.2
        done
        [[ -n $slurmd_pid ]] || fail_start "slurmd did not come up"
        log "slurmd: started (pid $slurmd_pid)"
    else
        log "slurmd: already running (pid $slurmd_pid)"
    fi
    wait_node_up || fail_start "the node did not become idle"
    log "up: node $(node_name) $(node_state), $CPUS CPUs, partition debug (SLURM_CONF=$CONF)"
}

stop_pid() {  # pidfile comm
    local f=$1 comm=$2 pid i
    pid=$(live_pid "$f" "$comm" || true)
    if [[ -z $pid ]]; then
        "${SUDO[@]}" rm -f "$f"
        return 0
    fi
    "${SUDO[@]}" kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 75; i++)); do
        alive "$pid" || break
        sleep 0.2
    done
    if alive "$pid"; then
        log "$comm (pid $pid) ignores SIGTERM, sending SIGKILL"
        "${SUDO[@]}" kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    "${SUDO[@]}" rm -f "$f"
    log "$comm: stopped (pid $pid)"
}

cmd_stop() {
    local jobs i
    if live_pid "$DIR/slurmctld.pid" slurmctld >/dev/null && ctld_answers; then
        jobs=$(timeout 15 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ' || true)
        if [[ -n ${jobs// /} ]]; then
            log "cancelling jobs: $jobs"
            # shellcheck disable=SC2086
            "${SUDO[@]}" env SLURM_CONF="$CONF" scancel $jobs 2>/dev/null || true
            for ((i = 0; i < 60; i++)); do
                [[ -z $(timeout 15 squeue -h -t running,completing,configuring -o %A 2>/dev/null || true) ]] && break
                sleep 0.5
            done
        fi
    fi
    stop_pid "$DIR/slurmd.pid" slurmd
    stop_pid "$DIR/slurmctld.pid" slurmctld
    stop_pid "$DIR/munged.pid" munged   # only when this script started it
    log "stopped"
}

cmd_status() {
    local p rc=0 d
    for d in slurmctld slurmd munged; do
        if p=$(live_pid "$DIR/$d.pid" "$d"); then
            echo "$d: running (pid $p)"
        elif [[ $d == munged ]] && munge_ok; then
            echo "munged: running (not started by this script)"
        else
            echo "$d: not running"
            [[ $d == munged ]] || rc=1
        fi
    done
    if ctld_answers; then
        echo "SLURM_CONF=$CONF"
        timeout 15 sinfo -N -o '%N %P %T %c %m' || true
        [[ $(node_state || true) =~ ^(idle|mixed|allocated|completing)$ ]] || rc=1
    else
        echo "controller: not answering (SLURM_CONF=$CONF)"
        rc=1
    fi
    return $rc
}

cmd_env() {
    echo "export SLURM_CONF=$CONF"
    echo "export SLURM_LOCAL_DIR=$DIR"
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    clean)
        cmd_stop
        "${SUDO[@]}" rm -rf "$DIR"
        log "removed $DIR"
        ;;
    *)
        echo "usage: $0 start|stop|status|env|clean" >&2
        exit 2
        ;;
esac
