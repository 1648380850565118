#!/usr/bin/env bash
# A real Slurm test of sharding (docs/SCALING.md): starts a one-node Slurm cluster on
# this machine (munged, slurmctld, slurmd, all private to a temporary folder), submits
# `sbatch --array=0-3` where each task runs `melpipe run` with no --shard (the shard comes from
# the Slurm array variables), waits, merges the four shard outputs, and checks that features.npy
# and mapping.npy are byte-identical to a single run over every file.
#
# Usage: scripts/slurm_test.sh [MELPIPE_BINARY]    (default: target/debug/melpipe, built if absent)
# Environment: FILES (valid clips, default 400), CORRUPT (malformed files, default 6),
#              SLURM_TEST_TIMEOUT (seconds for the array job, default 300),
#              SLURM_TEST_PORT (slurmctld port, slurmd uses the next one; default 16817),
#              KEEP=1 keeps the temporary folder.
# Needs root (it installs slurmctld, slurmd, slurm-client and munge from Debian's packages when
# they are missing, and runs the daemons). Exit 0: identical; anything else: a failure, with the
# daemons' logs printed. The daemons it started are stopped by their process ids on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
t_start=$(date +%s)

say() { echo "slurm_test: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (installs packages and runs slurmctld/slurmd/munged)"

BIN=${1:-target/debug/melpipe}
if [ ! -x "$BIN" ]; then
    say "building melpipe ($BIN is missing)"
    cargo build -q -p melpipe
fi
BIN=$(readlink -f "$BIN")
FILES=${FILES:-400}
CORRUPT=${CORRUPT:-6}
TIMEOUT=${SLURM_TEST_TIMEOUT:-300}
PORT=${SLURM_TEST_PORT:-16817}

# --- packages -------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    install() { apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null; }
    install || { apt-get update -qq >/dev/null && install; } || die "apt-get could not install Slurm"
fi
say "$(slurmctld -V), $(munged -V 2>&1 | head -1)"

# --- a private cluster ----------------------------------------------------------------------
W=$(mktemp -d /tmp/melpipe-slurm.XXXXXX)
chmod 755 "$W"   # munged runs as the munge user and must reach its socket folder
PIDS=()
cleanup() {
    local rc=$?
    # Jobs still running (a timeout) are cancelled while slurmctld is there to do it.
    if [ "$rc" != 0 ] && [ -f "$W/slurm.conf" ] && [ "${#PIDS[@]}" -gt 0 ]; then
        scancel --name=melpipe-shards 2>/dev/null || true
        for _ in $(seq 25); do
            [ -z "$(squeue -h 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    local pids=("${PIDS[@]}")
    [ -s "$W/munge/munged.pid" ] && pids+=("$(cat "$W/munge/munged.pid")")
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    # Wait for them to go (slurmctld saves its state on the way out).
    for _ in $(seq 50); do
        alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.2
    done
    if [ "$rc" != 0 ]; then
        for f in "$W"/munge/munged.log "$W"/log/*.log "$W"/jobs/*.log; do
            [ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
        done >&2
    fi
    if [ "${KEEP:-0}" = 1 ]; then say "kept $W"; else rm -rf "$W"; fi
    exit "$rc"
}
trap cleanup EXIT

mkdir -p "$W/munge" "$W/state" "$W/spool" "$W/log" "$W/jobs" "$W/shards"
chown munge:munge "$W/munge"
chmod 711 "$W/munge"
runuser -u munge -- mungekey --create --keyfile="$W/munge/munge.key"
runuser -u munge -- munged --key-file="$W/munge/munge.key" --socket="$W/munge/munge.sock" \
    --pid-file="$W/munge/munged.pid" --log-file="$W/munge/munged.log" \
    --seed-file="$W/munge/munged.seed" || die "munged did not start"
munge -S "$W/munge/munge.sock" -n | unmunge -S "$W/munge/munge.sock" >/dev/null \
    || die "munged does not answer"

HOST=$(hostname -s)
# The node as slurmd sees it: real CPU count, sockets, cores, threads and memory.
NODE=$(slurmd -C | head -n 1)
case "$NODE" in NodeName=*) ;; *) die "slurmd -C gave no node description: $NODE" ;; esac
export SLURM_CONF="$W/slurm.conf"
cat >"$SLURM_CONF" <<EOF
ClusterName=melpipe-test
SlurmctldHost=$HOST
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$W/munge/munge.sock
StateSaveLocation=$W/state
SlurmdSpoolDir=$W/spool
SlurmctldPidFile=$W/slurmctld.pid
SlurmdPidFile=$W/slurmd.pid
SlurmctldLogFile=$W/log/slurmctld.log
SlurmdLogFile=$W/log/slurmd.log
# No cgroups: containers and CI machines rarely delegate them.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
$NODE State=UNKNOWN
PartitionName=melpipe Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
say "node: $NODE"
slurmctld -D >"$W/log/slurmctld.out.log" 2>&1 &
PIDS+=($!)
slurmd -D >"$W/log/slurmd.out.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 60); do
    state=$(sinfo -h -n "$HOST" -o %t 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 1
done
[ "$state" = idle ] || die "the node did not become idle within 60 s (state: ${state:-none})"
say "cluster up: $(sinfo -h -o '%P %D nodes %c CPUs %m MB %t')"

# --- the job --------------------------------------------------------------------------------
"$BIN" generate "$W/data" --files "$FILES" --corrupt "$CORRUPT" 2>"$W/log/generate.log"
cat >"$W/job.sh" <<EOF
#!/bin/bash
# No --shard: melpipe takes K and N from SLURM_ARRAY_TASK_ID/MIN/COUNT.
exec "$BIN" run "$W/data" -o "$W/shards/\$SLURM_ARRAY_TASK_ID" --device cpu --threads 1
EOF
chmod +x "$W/job.sh"
t_job=$(date +%s)
timeout "$TIMEOUT" sbatch --wait --array=0-3 --cpus-per-task=1 --job-name=melpipe-shards \
    --output="$W/jobs/%A_%a.log" "$W/job.sh" >"$W/log/sbatch.log" \
    || die "the array job failed or timed out ($(cat "$W/log/sbatch.log"))"
say "array job done in $(($(date +%s) - t_job)) s: $(cat "$W/log/sbatch.log")"

for k in 0 1 2 3; do
    grep -q "shard $k/4 from the Slurm job array" "$W"/jobs/*_"$k".log \
        || die "task $k did not log its shard from the Slurm variables"
    python3 - "$W/shards/$k/manifest.json" "$k" <<'EOF' || die "shard $k's manifest has the wrong shard record"
import json, sys
s = json.load(open(sys.argv[1]))["shard"]
assert (s["index"], s["count"]) == (int(sys.argv[2]), 4), s
EOF
done

# --- merge and compare ----------------------------------------------------------------------
"$BIN" merge "$W/shards/3" "$W/shards/1" "$W/shards/0" "$W/shards/2" -o "$W/merged"
"$BIN" verify "$W/merged" >/dev/null || die "the merged output does not verify"
"$BIN" run "$W/data" -o "$W/single" -q --device cpu 2>"$W/log/single.log"
for f in features.npy mapping.npy; do
    cmp "$W/merged/$f" "$W/single/$f" || die "$f of the merged shards differs from the single run"
done
rows=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['rows'])" "$W/merged/manifest.json")
say "PASS: 4 Slurm array tasks → merge is byte-identical to a single run ($((FILES + CORRUPT)) files, $rows rows) in $(($(date +%s) - t_start)) s"
