#!/usr/bin/env bash
# Runs librdkafka's own integration test suite against a fresh StreamBus broker.
#
# The suite's sources come from the rdkafka-sys crate the Rust tests already build (its
# librdkafka/ directory in the cargo registry); nothing else is downloaded. The library and
# the suite's test-runner are built once into target/librdkafka-suite/ and reused.
#
# Usage: tests/compat/librdkafka.sh [--binary PATH] [--timeout SECONDS] [--list FILE] [--jobs N]
#                                    [TEST...]
#   --binary PATH     the streambus binary (default: target/debug/streambus, built if missing)
#   --timeout SECONDS the longest one test may run (default 300)
#   --list FILE       the allowlist (default: tests/compat/librdkafka.allow)
#   --jobs N          how many tests run at once against the broker (default 2, or
#                     $LIBRDKAFKA_SUITE_JOBS)
# Each test's output goes to target/librdkafka-suite-logs/NNNN.log (or $LIBRDKAFKA_SUITE_LOGS).
#   TEST...           run these test numbers instead of the allowlist (e.g. 0041 0081);
#                     add :full to run one without quick mode (-Q), :noautocreate to run it
#                     against a broker with auto_create_topics off (e.g. 0107:noautocreate),
#                     :consumer to run its consumers with group.protocol=consumer (KIP-848)
#
# The allowlist holds one test number per line, optionally followed by `full`, `noautocreate`
# (librdkafka's "noautocreate" scenario) and/or `consumer` (TEST_CONSUMER_GROUP_PROTOCOL=consumer:
# the suite's consumers use the KIP-848 protocol), then a comment. A number may be listed
# twice, once with `consumer`, to run under both group protocols.
#
# Prints PASS/FAIL per test and a closing "N passed, N failed" line; exits non-zero if any
# test failed. A test counts as passed only if librdkafka reports it PASSED and it did not
# skip every one of its subtests (some tests do that in quick mode without a broker).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

binary="target/debug/streambus"
timeout_seconds=300
jobs="${LIBRDKAFKA_SUITE_JOBS:-2}"
list="tests/compat/librdkafka.allow"
requested=()
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --timeout) timeout_seconds="$2"; shift 2 ;;
    --list) list="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "librdkafka.sh: unknown option $1" >&2; exit 2 ;;
    *) requested+=("$1"); shift ;;
  esac
done

# The tests to run, as NUMBER[:full][:noautocreate].
tests=()
if [ ${#requested[@]} -gt 0 ]; then
  tests=("${requested[@]}")
else
  while read -r number options; do
    case "$number" in ''|'#'*) continue ;; esac
    entry="$number"
    for option in ${options%%#*}; do
      case "$option" in
        full|noautocreate|consumer) entry="$entry:$option" ;;
        *) echo "librdkafka.sh: unknown option '$option' for $number in $list" >&2; exit 2 ;;
      esac
    done
    tests+=("$entry")
  done <"$list"
fi

# --- Build librdkafka and its test-runner from the rdkafka-sys sources -------------------
source_dir=$(cargo metadata --format-version 1 --locked 2>/dev/null | python3 -c '
import json, os, sys
packages = json.load(sys.stdin)["packages"]
sys_crate = [p for p in packages if p["name"] == "rdkafka-sys"]
print(os.path.join(os.path.dirname(sys_crate[0]["manifest_path"]), "librdkafka"))
')
if [ ! -f "$source_dir/tests/test.c" ]; then
  echo "librdkafka.sh: no librdkafka test sources at $source_dir (run cargo fetch)" >&2
  exit 1
fi
version=$(basename "$(dirname "$source_dir")")
suite="target/librdkafka-suite"
# RapidJSON (Debian's rapidjson-dev) lets the C++ tests that check statistics JSON run; a
# build made without it is rebuilt once it is there.
build_key="$version"
[ -f /usr/include/rapidjson/schema.h ] && build_key="$version with RapidJSON"
if [ ! -x "$suite/tests/test-runner" ] || [ "$(cat "$suite/.built-from" 2>/dev/null)" != "$build_key" ]; then
  echo "librdkafka.sh: building librdkafka's test suite from $version"
  rm -rf "$suite"
  mkdir -p target
  cp -r "$source_dir" "$suite"
  chmod -R u+w "$suite"
  (
    cd "$suite"
    # No SSL, SASL or HTTP: the suite runs against a plaintext listener. (mklove takes any
    # configure.* file in its directory for a module, so the logs are named build-*.)
    ./configure --no-download --disable-ssl --disable-gssapi --disable-sasl --disable-curl \
      >build-configure.log 2>&1
    make -j"$(nproc)" libs >build-make.log 2>&1
    make -j"$(nproc)" -C tests build >build-tests.log 2>&1
  ) || {
    echo "librdkafka.sh: the build failed; see $suite/build-*.log" >&2
    exit 1
  }
  echo "$build_key" >"$suite/.built-from"
fi

if [ ! -x "$binary" ]; then
  cargo build --bin streambus
fi

# --- A fresh broker per scenario: 2 shards, 4 partitions per auto-created topic ------------
# shellcheck source=../scripts/broker.sh
source "$root/tests/scripts/broker.sh"
work="$(mktemp -d)"
broker_pid=
broker_scenario=
cleanup() {
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then kill -9 "$broker_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT
logs="${LIBRDKAFKA_SUITE_LOGS:-$root/target/librdkafka-suite-logs}"
rm -rf "$logs"
mkdir -p "$logs"
broker_problems=0

# Stops the running broker with SIGTERM; it must exit 0 and its log must hold no panic.
stop_broker() {
  [ -n "$broker_pid" ] || return 0
  kill -TERM "$broker_pid" 2>/dev/null || true
  local status=0
  wait "$broker_pid" || status=$?
  broker_pid=
  cp "$work/broker-$broker_scenario.log" "$logs/broker-$broker_scenario.log"
  if [ "$status" -ne 0 ]; then
    echo "librdkafka.sh: the $broker_scenario broker exited with status $status on SIGTERM"
    broker_problems=$((broker_problems + 1))
  fi
  if grep -q "panicked" "$logs/broker-$broker_scenario.log"; then
    echo "librdkafka.sh: the $broker_scenario broker's log shows a panic"
    broker_problems=$((broker_problems + 1))
  fi
}

# Starts a broker for `scenario` (default: auto-create on; noautocreate: off) and writes the
# suite's test.conf for it.
start_broker() {
  local scenario="$1" auto_create=true
  [ "$scenario" = "noautocreate" ] && auto_create=false
  broker_scenario="$scenario"
  printf 'auto_create_topics = %s\ndefault_partitions = 4\n' "$auto_create" >"$work/broker.toml"
  start_streambus "$binary" "$work" "$work/broker.toml" "$work/broker-$scenario.log" || exit 1
  echo "librdkafka.sh: $scenario broker at $bootstrap, suite $version"
  cat >"$work/test.conf" <<CONF
metadata.broker.list=$bootstrap
# Topics of one run never collide with another's.
test.topic.random=true
# librdkafka's own CI runs its suite with the timeout multiplier raised by 2 (test.c adds 2
# when CI is set): some limits are tight by design, e.g. 0059's binary search costs about 1 s a
# step on any broker (fetch.queue.backoff.ms after each seek) against a 10 s limit, and failed
# at random on a 2-core CI machine. The multiplier scales timeouts only, not the waits tests
# make on purpose.
test.timeout.multiplier=3
CONF
  export TEST_SCENARIO="$scenario"
}

# The Kafka version whose behaviour StreamBus follows: version-gated tests run.
export TEST_KAFKA_VERSION=4.1.0
export RDKAFKA_TEST_CONF="$work/test.conf"
export LD_LIBRARY_PATH="$root/$suite/src:$root/$suite/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# Runs one test (NUMBER[:full][:noautocreate][:consumer]) against the running broker and
# prints its PASS/FAIL line; appends "pass LABEL" or "fail LABEL" to the results file $2.
run_test() {
  local entry="$1" results="$2"
  local number="${entry%%:*}" quick="-Q" group_protocol=classic
  [[ "$entry" == *:full* ]] && quick=""
  [[ "$entry" == *:consumer* ]] && group_protocol=consumer
  # A test run under both group protocols keeps one log per protocol.
  local label="$number"
  [ "$group_protocol" = consumer ] && label="$number-consumer"
  if ! kill -0 "$broker_pid" 2>/dev/null; then
    echo "FAIL $label (the broker is no longer running)"
    echo "fail $label" >>"$results"
    return
  fi
  local log="$logs/$label.log" report="$work/report-$label.json"
  local started status=0 elapsed verdict
  started=$(date +%s)
  # -L: leave out the local-only variants (mock cluster, no broker) that share the number.
  (cd "$suite/tests" && TESTS="$number" TEST_REPORT="$report" \
    TEST_CONSUMER_GROUP_PROTOCOL="$group_protocol" \
    timeout --kill-after=10 "$timeout_seconds" ./test-runner -L $quick -p1 >"$log" 2>&1) || status=$?
  elapsed=$(( $(date +%s) - started ))
  verdict=$(python3 - "$report" "$log" "$status" "$number" "${quick:-full}" "$root/$suite/tests" <<'PY'
import glob, json, re, sys
report, log, status = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    text = open(report).read()
    # The report is JSON but for trailing commas some versions leave.
    data = json.loads(re.sub(r",\s*([}\]])", r"\1", text))
except (OSError, ValueError):
    # 124: timeout(1) stopped it; 137: killed after the grace period.
    if status in (124, 137):
        print("timed out: the script's limit")
    else:
        print(f"no report (exit status {status})")
    sys.exit()
number = sys.argv[4]
states = {name: test["state"] for name, test in data.get("tests", {}).items()
          if name.startswith(number + "_")}
# A *_mock test talks to librdkafka's built-in mock cluster, not to StreamBus: it does not count.
ran = {name: state for name, state in states.items()
       if state in ("PASSED", "FAILED", "RUNNING") and "mock" not in name}
failed = [name for name, state in ran.items() if state != "PASSED"]
output = open(log, errors="replace").read()
passes = len(re.findall(r": PASS \(", output))
# A subtest that skips prints "[ name: SKIP: reason ]"; whole-test skips of other variants
# ("SKIPPING TEST: Filtered ...") do not count.
skips = len(re.findall(r"\[ [^\]\n]*: SKIP", output))
# In quick mode a subtest started with SUB_TEST() (not SUB_TEST_QUICK()) returns at once,
# silently; a test made only of those "passes" without a client. Each subtest that starts
# prints "[ function:line ... ]" in magenta.
sources = glob.glob(f"{sys.argv[6]}/{number}-*.c*")
uses_subtests = any("SUB_TEST" in open(path, errors="replace").read() for path in sources)
started = len(re.findall(r"\x1b\[35m\[ [^\]\n]*:\d+", output))
quick = sys.argv[5] == "-Q"
if failed:
    print("failed: " + ", ".join(failed))
elif not ran:
    print("nothing ran: local-only, or skipped by the suite (" + ", ".join(sorted(states)) + ")")
elif status != 0:
    print(f"exit status {status}")
elif skips and not passes:
    print(f"every subtest skipped ({skips})")
elif quick and uses_subtests and not started:
    print("no subtest ran in quick mode: list it with 'full'")
else:
    print("ok " + ", ".join(sorted(ran)))
PY
)
  case "$verdict" in
    ok*) echo "PASS $label (${elapsed}s) ${verdict#ok }"; echo "pass $label" >>"$results" ;;
    *) echo "FAIL $label (${elapsed}s) $verdict; log: $log"; echo "fail $label" >>"$results" ;;
  esac
}

# Runs the tests listed in file $1 against the running broker, $jobs at a time: each lane takes
# the next test from the list (under a lock) until none is left. The suite's tests are written
# to run side by side (librdkafka's own CI runs several at once; test.topic.random keeps their
# topics and groups apart), and most of their time is waiting, so two lanes halve the run.
run_queue() {
  local queue="$1" results="$2" lane lanes=()
  echo 0 >"$queue.next"
  : >"$queue.lock"
  for lane in $(seq 1 "$jobs"); do
    (
      while true; do
        exec 9<>"$queue.lock"
        flock 9
        index=$(cat "$queue.next")
        echo $((index + 1)) >"$queue.next"
        flock -u 9
        exec 9>&-
        entry=$(sed -n "$((index + 1))p" "$queue")
        [ -n "$entry" ] || break
        run_test "$entry" "$results"
      done
    ) &
    lanes+=($!)
  done
  # Only the lanes: a bare `wait` would wait for the broker too.
  wait "${lanes[@]}"
}

results="$work/results"
: >"$results"
# Default-scenario tests first, then those that need auto-creation off: one broker each.
for scenario in default noautocreate; do
  queue="$work/queue-$scenario"
  : >"$queue"
  for entry in "${tests[@]}"; do
    if [[ "$entry" == *:noautocreate* ]]; then entry_scenario=noautocreate; else entry_scenario=default; fi
    [ "$entry_scenario" = "$scenario" ] && echo "$entry" >>"$queue"
  done
  [ -s "$queue" ] || continue
  stop_broker
  start_broker "$scenario"
  run_queue "$queue" "$results"
done

stop_broker
passed=$(grep -c '^pass ' "$results" || true)
failed=$(grep -c '^fail ' "$results" || true)
failed_tests=$(sed -n 's/^fail //p' "$results" | sort | tr '\n' ' ')
failed=$((failed + broker_problems))
echo "$passed passed, $failed failed${failed_tests:+ (${failed_tests% })}"
[ "$failed" -eq 0 ]
