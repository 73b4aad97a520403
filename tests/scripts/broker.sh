# Shell helper for the scripts that run real clients against the real broker (tests/smoke,
# tests/compat). Source it, then:
#
#   start_streambus BINARY WORK_DIR CONFIG_TOML STDERR_LOG
#
# starts a 2-shard broker on ephemeral ports with a fresh data directory WORK_DIR/data and the
# given config, waits (30 s at most) for its "listening on" line, and sets `broker_pid` and
# `bootstrap`. If it does not start, prints its log and returns 1.
start_streambus() {
  local binary="$1" work="$2" config="$3" log="$4"
  rm -rf "$work/data"
  "$binary" --data-dir "$work/data" --listen 127.0.0.1:0 --shards 2 --config "$config" \
    >"$work/stdout" 2>"$log" &
  broker_pid=$!
  for _ in $(seq 1 300); do
    if grep -q 'listening on' "$work/stdout"; then break; fi
    sleep 0.1
  done
  # "streambus listening on ADDR shards N shard ports P1,P2 data dir DIR"
  bootstrap=$(awk '/listening on/ {print $4}' "$work/stdout")
  if [ -z "$bootstrap" ]; then
    echo "the broker did not start; its log:" >&2
    cat "$log" >&2
    return 1
  fi
}
