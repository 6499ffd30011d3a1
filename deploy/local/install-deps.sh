#!/usr/bin/env bash
# Installs what Moments needs outside Python to run Kafka and Redis without Docker:
# redis-server, a Java 17+ runtime and Maven from the OS packages (only when missing), then
# the Apache Kafka broker jars from Maven Central into ~/.cache/moments (with an archive of
# their classes, for faster broker starts). With --tests it also
# installs what only the tests need: Chromium and Prometheus.
# Usage: install-deps.sh PYTHON [--tests]
set -euo pipefail
PY="${1:-python3}"
TESTS="${2:-}"

java_major() {  # 17 for 'openjdk version "17.0.9"', 1 for Java 8's "1.8.0"
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}

need=()
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)
need_java=""  # the Kafka 4 broker needs Java 17 or later; the package is picked below
if ! command -v java >/dev/null 2>&1 || [ "$(java_major || true)" -lt 17 ] 2>/dev/null \
    || [ -z "$(java_major || true)" ]; then
  need_java=yes
fi
command -v mvn >/dev/null 2>&1 || need+=(maven)
need_chromium=""
if [ "$TESTS" = "--tests" ]; then
  # Headless browser for the console test (tests/integration/test_console_browser.py):
  # Debian's package only (or one MOMENTS_CHROMIUM names), never one downloaded at run time.
  [ -x "${MOMENTS_CHROMIUM:-/usr/bin/chromium}" ] || need_chromium=yes
  # Prometheus server and promtool for the observability test
  # (tests/integration/test_observability.py) and for checking deploy/prometheus/.
  { [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; } || need+=(prometheus)
  # A certificate authority for the TLS Redis test (tests/integration/test_redis_tls.py).
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
fi

# the first of these packages this system's package lists offer
offered() {
  local p
  for p in "$@"; do
    if apt-cache show "$p" >/dev/null 2>&1; then echo "$p"; return 0; fi
  done
  return 1
}

if [ ${#need[@]} -gt 0 ] || [ -n "$need_java" ] || [ -n "$need_chromium" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if ! command -v apt-get >/dev/null 2>&1; then
    [ -n "$need_java" ] && need+=("a Java 17+ runtime")
    [ -n "$need_chromium" ] && need+=(chromium)
    echo "please install: ${need[*]}" >&2
    exit 1
  fi
  $SUDO apt-get update -qq
  if [ -n "$need_java" ]; then  # Debian 12 and Ubuntu offer 17; Debian 13 21 and later
    need+=("$(offered openjdk-17-jre-headless openjdk-21-jre-headless openjdk-25-jre-headless \
      default-jre-headless || echo default-jre-headless)")
  fi
  if [ -n "$need_chromium" ]; then
    if ! offered chromium >/dev/null; then
      echo "no 'chromium' package here (Ubuntu ships Chromium as a snap only, which cannot" \
        "run in a container): install a Chromium or Chrome binary and set" \
        "MOMENTS_CHROMIUM=/path/to/it" >&2
      exit 1
    fi
    need+=(chromium)
  fi
  echo "installing OS packages: ${need[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

"$PY" -c "from streams.services.local_kafka import kafka_libs; print('Kafka jars in', kafka_libs())"
# the broker's classes, archived once for faster starts (streams/services/kafka_classes.py)
# (none to be had only costs speed: the brokers start without it)
"$PY" -c "from streams.services.kafka_classes import build_class_archive as b; a = b()
print('Kafka classes in', a) if a else print('no Kafka class archive: brokers start without')" \
  || echo "no Kafka class archive: brokers start without" >&2
