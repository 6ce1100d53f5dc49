#!/usr/bin/env bash
# README command (1): install what is missing, build, and run Sluice in the
# foreground on an embedded upstream (librdkafka's mock cluster, 3 brokers).
# Extra arguments go to sluice (e.g. --listen 127.0.0.1:19092).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup-deps.sh --try
if [ ! -d build ]; then meson setup build >/dev/null; fi
ninja -C build sluice >/dev/null
cat <<MSG

  Sluice is starting with an embedded mock Kafka cluster (3 brokers).
  Point clients at:   127.0.0.1:9092   (unless you passed --listen)
  Try:                printf 'k1:hello\nk2:world\n' | kcat -P -b 127.0.0.1:9092 -t demo -K:
  Read it upstream:   kcat -C -b <mock address from the log below> -t demo -e
  Stop with Ctrl-C (SIGINT): in-flight records are finished first.

MSG
exec build/sluice --config deploy/sluice.example.json "$@"
