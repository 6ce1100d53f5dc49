#!/usr/bin/env bash
# Compiles the Java test programs against the jars tests/kafka/fetch.sh
# fetches, into that cache folder, and prints the folder. Rebuilds only what
# is older than its sources or jars; safe to run concurrently (flock).
#
#   $CACHE/java-build/clients4/ProduceDriver.class      (kafka-clients 4.x)
#   $CACHE/java-build/clients3/ProduceDriver.class      (kafka-clients 3.x)
#   $CACHE/java-build/clients010/LegacyProduceDriver.class (kafka-clients 0.10.x)
#   $CACHE/java-build/connect-plugins/sluice-seq-source.jar
#       SeqSourceConnector + SeqSourceTask, a Connect plugin.path entry
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="$("$here/../kafka/fetch.sh")"
out="$cache/java-build"
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9

# stale OUTPUT INPUT...: true if OUTPUT is missing or older than an INPUT.
stale() {
  local target="$1"; shift
  [ -e "$target" ] || return 0
  local f
  for f in "$@"; do [ "$f" -nt "$target" ] && return 0; done
  return 1
}

for v in clients4:ProduceDriver clients3:ProduceDriver clients010:LegacyProduceDriver; do
  main=${v#*:}
  v=${v%%:*}
  if stale "$out/$v/$main.class" "$here/$main.java" "$here/DriverSupport.java" \
           "$cache/$v/.complete"; then
    rm -rf "$out/$v.tmp"
    mkdir -p "$out/$v.tmp"
    javac --release 17 -nowarn -encoding UTF-8 -cp "$cache/$v/*" -d "$out/$v.tmp" \
          "$here/$main.java" "$here/DriverSupport.java" >&2
    rm -rf "$out/$v"
    mv "$out/$v.tmp" "$out/$v"
  fi
done

jar="$out/connect-plugins/sluice-seq-source.jar"
if stale "$jar" "$here/SeqSourceConnector.java" "$here/SeqSourceTask.java" \
         "$cache/broker/.complete"; then
  tmp="$out/connect.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp/classes/META-INF/services" "$out/connect-plugins"
  javac --release 17 -nowarn -encoding UTF-8 -cp "$cache/broker/*" -d "$tmp/classes" \
        "$here/SeqSourceConnector.java" "$here/SeqSourceTask.java" >&2
  # Lets the worker find the connector with plugin.discovery=service_load.
  echo dev.sluice.test.SeqSourceConnector \
      > "$tmp/classes/META-INF/services/org.apache.kafka.connect.source.SourceConnector"
  jar --create --file "$tmp/plugin.jar" -C "$tmp/classes" . >&2
  mv "$tmp/plugin.jar" "$jar"
  rm -rf "$tmp"
fi
echo "$cache"
