#!/usr/bin/env bash
# Installs what Sluice needs to build and test, only what is missing:
# Debian 12 packages via apt-get, Apache Kafka's jars from Maven Central
# (tests/kafka), and the npm packages of tests/js.
# Idempotent; safe to run again. Uses sudo only when not root.
#
#   deploy/setup-deps.sh          everything the tests and benchmarks use
#   deploy/setup-deps.sh --try    only what deploy/try.sh needs (no Java, no Kafka)
set -euo pipefail
cd "$(dirname "$0")/.."
full=1
[ "${1:-}" = --try ] && full=0

PKGS=(
  build-essential meson ninja-build pkg-config
  librdkafka-dev libuv1-dev libjansson-dev libssl-dev node-llhttp
  zlib1g-dev liblz4-dev libzstd-dev libsnappy-dev
  kcat openssl python3 python3-confluent-kafka python3-kafka
  python3-lz4 python3-snappy python3-zstandard python3-xxhash
  clang libclang-rt-14-dev
  prometheus chromium
  valgrind
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# Node.js: any installed node/npm will do (Debian's or NodeSource's).
if ! command -v node >/dev/null 2>&1; then missing+=(nodejs); fi
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi
# Java 17 and Maven for the real Kafka cluster, Kafka Connect and the Java
# clients of the tests (any installed JDK 17+ and Maven will do).
if [ $full = 1 ]; then
  if ! command -v javac >/dev/null 2>&1; then missing+=(openjdk-17-jdk-headless); fi
  if ! command -v mvn >/dev/null 2>&1; then missing+=(maven); fi
  # tc and ip for the tests' own network namespaces.
  if ! command -v tc >/dev/null 2>&1 || ! command -v ip >/dev/null 2>&1; then missing+=(iproute2); fi
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Apache Kafka (broker, Connect, Java clients) from Maven Central, pinned by
# tests/kafka/pom.xml, into the test cache.
if [ $full = 1 ]; then
  tests/kafka/fetch.sh >/dev/null
  # franz-go and sarama (Go module proxy), confluent-kafka 2.x, aiokafka and
  # kafka-python 3.x (PyPI).
  deploy/setup-clients.sh
fi

# JavaScript test clients (kafkajs, playwright-core for the status page),
# pinned by tests/js/package-lock.json: install when any one is missing.
js_missing=0
for m in kafkajs kafkajs-snappy playwright-core; do
  [ -d "tests/js/node_modules/$m" ] || js_missing=1
done
if [ -f tests/js/package.json ] && [ "$js_missing" = 1 ]; then
  echo "setup: npm ci in tests/js"
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi
