#!/usr/bin/env bash
# README command (1): install what is missing, build, and run Sluice in the
# foreground on an embedded upstream (librdkafka's mock cluster, 3 brokers).
#
#   deploy/try.sh [sluice flags]           on the embedded mock cluster
#   deploy/try.sh --kafka [sluice flags]   in front of a local Apache Kafka 4
#                                          (one KRaft node on 127.0.0.1:29092,
#                                          from Maven Central; needs Java 17)
#   deploy/try.sh --demo [demo flags]      the story of what Sluice is for, on
#                                          the mock: three classes, a slow
#                                          broker, a paused backfill
#                                          (deploy/demo.py; status page on
#                                          http://127.0.0.1:9644/)
#
# Extra arguments go to sluice (e.g. --listen 127.0.0.1:19092).
set -euo pipefail
cd "$(dirname "$0")/.."
kafka=0
if [ "${1:-}" = --kafka ]; then kafka=1; shift; fi
if [ "${1:-}" = --demo ]; then
  shift
  deploy/setup-deps.sh --try
  if [ ! -d build ]; then meson setup build >/dev/null; fi
  ninja -C build sluice tests/sl-mock bench/loadgen >/dev/null
  exec /usr/bin/python3 deploy/demo.py "$@"
fi

if [ $kafka = 1 ]; then
  deploy/setup-deps.sh          # Java, Maven and Kafka's jars too
else
  deploy/setup-deps.sh --try
fi
if [ ! -d build ]; then meson setup build >/dev/null; fi
ninja -C build sluice >/dev/null

if [ $kafka = 0 ]; then
  cat <<MSG

  Sluice is starting with an embedded mock Kafka cluster (3 brokers).
  Point clients at:   127.0.0.1:9092   (unless you passed --listen)
  Try:                printf 'k1:hello\nk2:world\n' | kcat -P -b 127.0.0.1:9092 -t demo -K:
  Read it upstream:   kcat -C -b <mock address from the log below> -t demo -e
  Stop with Ctrl-C (SIGINT): in-flight records are finished first.

MSG
  exec build/sluice --config deploy/sluice.example.json "$@"
fi

# A one-node Apache Kafka (tests/integration/kafka_cluster.py, the suite's own
# harness) in the background, stopped when Sluice exits.
dir=$(mktemp -d /tmp/sluice-try-kafka.XXXXXX)
# setsid: Ctrl-C goes to Sluice only; Kafka stops after Sluice has finished.
setsid /usr/bin/python3 tests/integration/kafka_cluster.py --port 29092 --dir "$dir" \
  >"$dir/cluster.out" 2>&1 &
kpid=$!
trap 'kill $kpid 2>/dev/null; wait $kpid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 600); do
  grep -q '^BOOTSTRAP ' "$dir/cluster.out" 2>/dev/null && break
  kill -0 $kpid 2>/dev/null || { cat "$dir/cluster.out"; echo "kafka did not start"; exit 1; }
  sleep 0.2
done
upstream=$(sed -n 's/^BOOTSTRAP //p' "$dir/cluster.out")
[ -n "$upstream" ] || { cat "$dir/cluster.out"; echo "kafka did not start in 120 s"; exit 1; }
cat <<MSG

  Apache Kafka 4 (one KRaft node) is up at $upstream; logs in $dir.
  Sluice is starting in front of it.
  Point clients at:   127.0.0.1:9092   (unless you passed --listen)
  Try:                printf 'k1:hello\nk2:world\n' | kcat -P -b 127.0.0.1:9092 -t demo -K:
  Read it upstream:   kcat -C -b $upstream -t demo -e
  Stop with Ctrl-C: Sluice finishes in-flight records, then Kafka stops.

MSG
build/sluice --config deploy/sluice.example.json --upstream "$upstream" "$@" || true
