#!/usr/bin/env bash
# Installs the extra Kafka producer clients of tests/integration/extclients.py,
# only what is missing; idempotent, quiet when there is nothing to do, safe to
# run concurrently (one holds a lock, the others wait). Uses sudo only when
# not root.
#
#   franz-go   tests/go (go.mod, go.sum)      -> $CACHE/go-build/franz-produce
#   sarama     tests/go (go.mod, go.sum)      -> $CACHE/go-build/sarama-produce
#   kafka-go   tests/go (go.mod, go.sum)      -> $CACHE/go-build/kafkago-produce
#   confluent-kafka 2.x, aiokafka, kafka-python 3.x -> $CACHE/venv (tests/py/requirements.txt)
#
# CACHE is ${SLUICE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-test}.
# Needs Debian's python3-venv (the venv is made from /usr/bin/python3, never a
# python3 that happens to be first on PATH) and a Go at least as new as the go
# directive of tests/go/go.mod (franz-go v1.22.3 needs Go 1.26). Any go on PATH
# will do; without one Debian's golang-go is installed, which on Debian 12 is
# Go 1.19: too old, and the script then says so and fails. GOTOOLCHAIN is
# taken from the environment (default: local, so no toolchain is downloaded
# behind your back).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE="${SLUICE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-test}"
VENV="$CACHE/venv"
GOOUT="$CACHE/go-build"
PY=/usr/bin/python3
REQS="$ROOT/tests/py/requirements.txt"

say() { echo "setup-clients: $*"; }
die() { echo "setup-clients: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.setup-clients.lock"
flock 9

# --- Debian packages -------------------------------------------------------
missing=()
for p in python3 python3-venv; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ! command -v go >/dev/null 2>&1; then missing+=(golang-go); fi
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  hash -r
fi

# --- Python venv: confluent-kafka 2.x, aiokafka ------------------------------
# The stamp is the hash of the requirements file and of the interpreter's
# version: a change of either reinstalls.
want="$( (cat "$REQS"; "$PY" -VV) | sha256sum | cut -d' ' -f1)"
stamp="$VENV/.sluice-requirements"
if ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
  say "creating $VENV"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "pip install -r tests/py/requirements.txt into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-input \
    -r "$REQS" >/dev/null
  "$VENV/bin/python" -c 'import confluent_kafka, aiokafka, cramjam, kafka, snappy, lz4, zstandard' \
    || die "the venv lacks a client after pip install"
  echo "$want" >"$stamp"
fi

# --- Go: the drivers need tests/go/go.mod's version -------------------------
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
need=$(sed -n 's/^go \([0-9][0-9.]*\).*/\1/p' tests/go/go.mod)
have=$(go env GOVERSION 2>/dev/null | sed -n 's/^go\([0-9][0-9.]*\).*/\1/p')
if [ -z "$have" ] || [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n1)" != "$need" ]; then
  die "tests/go needs Go >= $need (franz-go), but $(command -v go) is ${have:-unknown}; put a newer go first on PATH (a go >= 1.21 can also fetch one from the Go module proxy: export GOTOOLCHAIN=go$need)"
fi
# --- Go drivers: franz-go, sarama, kafka-go --------------------------------------------
# Keyed by content, not modification times: the cache is shared by every
# checkout on the machine (worktrees, branches), and a binary built from
# another checkout's sources can be newer than this one's. The stamp beside
# each binary is the hash of tests/go's sources and of the Go version.
srchash=$( (go env GOVERSION; cd tests/go && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 \
            | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1)
for drv in produce:franz-produce sarama:sarama-produce kafkago:kafkago-produce; do
  src=${drv%%:*}
  bin="$GOOUT/${drv#*:}"
  if [ ! -x "$bin" ] || [ "$(cat "$bin.sources" 2>/dev/null)" != "$srchash" ]; then
    say "go build tests/go/$src -> $bin"
    mkdir -p "$GOOUT"
    (cd tests/go && go build -o "$bin.tmp" "./$src")
    mv -f "$bin.tmp" "$bin"
    echo "$srchash" >"$bin.sources"
  fi
done
