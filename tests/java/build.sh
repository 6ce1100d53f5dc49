#!/usr/bin/env bash
# Compiles the Java test programs against the jars tests/kafka/fetch.sh
# fetches, into that cache folder, and prints the folder. Rebuilds only what
# was built from other sources (a hash stamp); safe to run concurrently (flock).
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

# stale OUTPUT INPUT...: true if OUTPUT is missing or was built from other
# contents of the INPUTs, whose hash stamped() wrote to OUTPUT.sources after
# the build. Contents, not modification times: the cache is shared by every
# checkout on the machine, and a class built from another checkout's
# sources can be newer than this one's.
sources_hash() { cat "$@" | sha256sum | cut -d' ' -f1; }
stale() {
  local target="$1"; shift
  [ -e "$target" ] && [ "$(cat "$target.sources" 2>/dev/null)" = "$(sources_hash "$@")" ] && return 1
  return 0
}
stamped() { # OUTPUT INPUT...
  local target="$1"; shift
  sources_hash "$@" >"$target.sources"
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
    stamped "$out/$v/$main.class" "$here/$main.java" "$here/DriverSupport.java" \
            "$cache/$v/.complete"
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
  stamped "$jar" "$here/SeqSourceConnector.java" "$here/SeqSourceTask.java" \
          "$cache/broker/.complete"
  rm -rf "$tmp"
fi
echo "$cache"
