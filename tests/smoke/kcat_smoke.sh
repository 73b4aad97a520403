#!/usr/bin/env bash
# kcat smoke test (Debian's kcat, librdkafka 2.0.2, which negotiates versions the old way):
# produce 10,000 keyed messages to a 6-partition topic, consume them all back, compare.
# The broker must run with default_partitions = 6: kcat cannot create topics, so the topic is
# auto-created by the producer's Metadata request.
set -euo pipefail
bootstrap="$1"
topic="kcat-smoke-$$"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 10000); do echo "key-$i:value-$i-$(printf '%064d' "$i")"; done >"$work/sent"
timeout 120 kcat -b "$bootstrap" -P -t "$topic" -K: -X topic.request.required.acks=-1 <"$work/sent"
partitions=$(timeout 60 kcat -b "$bootstrap" -L -t "$topic" | grep -c 'partition [0-9]*, leader')
if [ "$partitions" -ne 6 ]; then
  echo "kcat smoke: topic has $partitions partitions, wanted 6" >&2
  exit 1
fi
timeout 120 kcat -b "$bootstrap" -C -t "$topic" -o beginning -e -q -f '%k:%s\n' >"$work/received"
sort "$work/sent" >"$work/sent.sorted"
sort "$work/received" >"$work/received.sorted"
if ! cmp -s "$work/sent.sorted" "$work/received.sorted"; then
  echo "kcat smoke: sent $(wc -l <"$work/sent") messages, received $(wc -l <"$work/received"); they differ" >&2
  diff "$work/sent.sorted" "$work/received.sorted" | head -5 >&2
  exit 1
fi
echo "kcat smoke: 10000 keyed messages over $partitions partitions round-tripped"
