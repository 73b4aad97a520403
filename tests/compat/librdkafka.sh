#!/usr/bin/env bash
# Runs librdkafka's own integration test suite against a fresh StreamBus broker.
#
# The suite's sources come from the rdkafka-sys crate the Rust tests already build (its
# librdkafka/ directory in the cargo registry); nothing else is downloaded. The library and
# the suite's test-runner are built once into target/librdkafka-suite/ and reused.
#
# Usage: tests/compat/librdkafka.sh [--binary PATH] [--timeout SECONDS] [--list FILE] [TEST...]
#   --binary PATH     the streambus binary (default: target/debug/streambus, built if missing)
#   --timeout SECONDS the longest one test may run (default 300)
#   --list FILE       the allowlist (default: tests/compat/librdkafka.allow)
#   TEST...           run these test numbers instead of the allowlist (e.g. 0041 0081);
#                     add :full to a number to run it without quick mode (-Q)
#
# Prints PASS/FAIL per test and a closing "N passed, N failed" line; exits non-zero if any
# test failed. A test counts as passed only if librdkafka reports it PASSED and it did not
# skip every one of its subtests (some tests do that in quick mode without a broker).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

binary="target/debug/streambus"
timeout_seconds=300
list="tests/compat/librdkafka.allow"
requested=()
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --timeout) timeout_seconds="$2"; shift 2 ;;
    --list) list="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "librdkafka.sh: unknown option $1" >&2; exit 2 ;;
    *) requested+=("$1"); shift ;;
  esac
done

# The tests to run: "NNNN" (quick mode) or "NNNN:full" (without -Q).
tests=()
if [ ${#requested[@]} -gt 0 ]; then
  tests=("${requested[@]}")
else
  while read -r number mode _; do
    case "$number" in ''|'#'*) continue ;; esac
    if [ "$mode" = "full" ]; then tests+=("$number:full"); else tests+=("$number"); fi
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
if [ ! -x "$suite/tests/test-runner" ] || [ "$(cat "$suite/.built-from" 2>/dev/null)" != "$version" ]; then
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
  echo "$version" >"$suite/.built-from"
fi

if [ ! -x "$binary" ]; then
  cargo build --bin streambus
fi

# --- A fresh broker: 2 shards, auto-create on, 4 partitions per auto-created topic ---------
work="$(mktemp -d)"
broker_pid=
cleanup() {
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then kill -9 "$broker_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT
cat >"$work/broker.toml" <<TOML
auto_create_topics = true
default_partitions = 4
TOML
"$binary" --data-dir "$work/data" --listen 127.0.0.1:0 --shards 2 --config "$work/broker.toml" \
  >"$work/stdout" 2>"$work/broker.log" &
broker_pid=$!
for _ in $(seq 1 300); do
  if grep -q 'listening on' "$work/stdout"; then break; fi
  sleep 0.1
done
bootstrap=$(awk '/listening on/ {print $4}' "$work/stdout")
if [ -z "$bootstrap" ]; then
  echo "librdkafka.sh: the broker did not start" >&2
  cat "$work/broker.log" >&2
  exit 1
fi
echo "librdkafka.sh: broker at $bootstrap, suite $version"

cat >"$work/test.conf" <<CONF
metadata.broker.list=$bootstrap
# Topics of one run never collide with another's.
test.topic.random=true
CONF

# The Kafka version whose behaviour StreamBus follows: version-gated tests run.
export TEST_KAFKA_VERSION=4.1.0
export RDKAFKA_TEST_CONF="$work/test.conf"
export LD_LIBRARY_PATH="$root/$suite/src:$root/$suite/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
logs="target/librdkafka-suite-logs"
rm -rf "$logs"
mkdir -p "$logs"

passed=0
failed=0
failed_tests=()
for entry in "${tests[@]}"; do
  number="${entry%%:*}"
  quick="-Q"
  [ "$entry" != "${entry%:full}" ] && quick=""
  if ! kill -0 "$broker_pid" 2>/dev/null; then
    echo "FAIL $number (the broker is no longer running)"
    failed=$((failed + 1)); failed_tests+=("$number"); continue
  fi
  log="$root/$logs/$number.log"
  report="$work/report-$number.json"
  started=$(date +%s)
  status=0
  # -L: leave out the local-only variants (mock cluster, no broker) that share the number.
  (cd "$suite/tests" && TESTS="$number" TEST_REPORT="$report" \
    timeout --kill-after=10 "$timeout_seconds" ./test-runner -L $quick -p1 >"$log" 2>&1) || status=$?
  elapsed=$(( $(date +%s) - started ))
  verdict=$(python3 - "$report" "$log" "$status" "$number" "${quick:-full}" <<'PY'
import glob, json, os, re, sys
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
ran = {name: state for name, state in states.items() if state in ("PASSED", "FAILED", "RUNNING")}
failed = [name for name, state in ran.items() if state != "PASSED"]
output = open(log, errors="replace").read()
passes = len(re.findall(r": PASS \(", output))
skips = len(re.findall(r": SKIP", output))
# In quick mode a subtest started with SUB_TEST() (not SUB_TEST_QUICK()) returns at once,
# silently; a test made only of those "passes" without a client. Each subtest that starts
# prints "[ function:line ... ]" in magenta.
sources = glob.glob(f"{os.path.dirname(log)}/../librdkafka-suite/tests/{number}-*.c*")
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
    ok*) echo "PASS $number (${elapsed}s) ${verdict#ok }"; passed=$((passed + 1)) ;;
    *) echo "FAIL $number (${elapsed}s) $verdict; log: $logs/$number.log"
       failed=$((failed + 1)); failed_tests+=("$number") ;;
  esac
done

kill -TERM "$broker_pid" 2>/dev/null || true
broker_status=0
wait "$broker_pid" || broker_status=$?
broker_pid=
cp "$work/broker.log" "$logs/broker.log"
if [ "$broker_status" -ne 0 ]; then
  echo "librdkafka.sh: the broker exited with status $broker_status on SIGTERM; log: $logs/broker.log"
  failed=$((failed + 1))
fi
if grep -q "panicked" "$logs/broker.log"; then
  echo "librdkafka.sh: the broker log shows a panic; log: $logs/broker.log"
  failed=$((failed + 1))
fi
echo "$passed passed, $failed failed${failed_tests[*]:+ (${failed_tests[*]})}"
[ "$failed" -eq 0 ]
