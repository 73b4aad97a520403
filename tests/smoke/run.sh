#!/usr/bin/env bash
# Starts the broker on a fresh data directory and runs every client smoke test against it:
# kcat, confluent-kafka, kafka-python and aiokafka: producing, consuming, committed offsets,
# subscribe() groups (kafka-python also at Kafka 0.11's API versions), idempotent producers
# with default settings, and transactional producers failing fast. Then stops the broker with SIGTERM and checks that
# it exits 0. Usage: tests/smoke/run.sh PATH_TO_STREAMBUS PYTHON
set -euo pipefail
binary="$1"
python="$2"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
cleanup() {
  if [ -n "${broker_pid:-}" ] && kill -0 "$broker_pid" 2>/dev/null; then kill -9 "$broker_pid"; fi
  rm -rf "$work"
}
trap cleanup EXIT
# kcat cannot create topics: its topic is auto-created with these partitions.
printf 'default_partitions = 6\n' >"$work/broker.toml"
# shellcheck source=../scripts/broker.sh
source "$here/../scripts/broker.sh"
start_streambus "$binary" "$work" "$work/broker.toml" "$work/stderr" || exit 1
echo "smoke: broker at $bootstrap"
status=0
bash "$here/kcat_smoke.sh" "$bootstrap" || status=1
timeout 300 "$python" "$here/confluent_kafka_smoke.py" "$bootstrap" || status=1
timeout 300 "$python" "$here/kafka_python_smoke.py" "$bootstrap" || status=1
timeout 300 "$python" "$here/groupless_clients.py" "$bootstrap" || status=1
timeout 300 "$python" "$here/group_clients.py" "$bootstrap" || status=1
kill -TERM "$broker_pid"
if ! wait "$broker_pid"; then
  echo "smoke: the broker did not exit 0 on SIGTERM" >&2
  status=1
fi
broker_pid=
if [ "$status" -ne 0 ]; then
  echo "smoke: broker log:" >&2
  tail -50 "$work/stderr" >&2
fi
exit "$status"
