# Sourced by bench/ab.sh and bench/idle_ab.sh: `run_variant VARIANT` runs one variant (BINARY or
# BINARY:ARGS, ARGS being extra `run` arguments with commas for spaces) on $DATA with --device
# $DEV into a fresh $OUTD/o after `sync`, and prints its wall time in milliseconds.
run_variant() {
    local v=$1 bin args t0 t1
    bin=${v%%:*}; args=(); [ "$bin" != "$v" ] && IFS=, read -r -a args <<< "${v#*:}"
    rm -rf "$OUTD/o"; sync
    t0=$(date +%s%N)
    "$bin" run "$DATA" -o "$OUTD/o" --device "$DEV" -q "${args[@]}" 2>>"$OUTD/stderr.log" || echo "FAILED $v" >&2
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
}
