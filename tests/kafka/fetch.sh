#!/usr/bin/env bash
# Fetches the pinned Apache Kafka jars (pom.xml) from Maven Central into the
# test cache, one folder per profile, and prints the cache folder. Does
# nothing when the jars are already there. Needs java and mvn (Debian's
# default-jdk-headless and maven; deploy/setup-deps.sh installs them).
#
#   tests/kafka/fetch.sh   ->  $SLUICE_TEST_CACHE/kafka-<version>/{broker,broker39,clients4,clients3,clients010}
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
cache="${SLUICE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice-test}/kafka-$version"
for profile in broker broker39 clients4 clients3 clients010; do
  dir="$cache/$profile"
  [ -f "$dir/.complete" ] && continue
  rm -rf "$dir.tmp"
  mvn -q -B -f "$here/pom.xml" -P"$profile" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$dir.tmp" >&2
  touch "$dir.tmp/.complete"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
done
echo "$cache"
