#!/usr/bin/env bash
# Installs what Moments needs outside Python to run Kafka and Redis without Docker:
# redis-server, a Java 17+ runtime and Maven from the OS packages (only when missing), then
# the Apache Kafka broker jars from Maven Central into ~/.cache/moments. With --tests it also
# installs what only the tests need: Chromium and Prometheus.
# Usage: install-deps.sh PYTHON [--tests]
set -euo pipefail
PY="${1:-python3}"
TESTS="${2:-}"

need=()
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if [ "$TESTS" = "--tests" ]; then
  # Headless browser for the console test (tests/integration/test_console_browser.py):
  # Debian's package only, never a browser downloaded at run time.
  [ -x /usr/bin/chromium ] || need+=(chromium)
  # Prometheus server and promtool for the observability test
  # (tests/integration/test_observability.py) and for checking deploy/prometheus/.
  { [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; } || need+=(prometheus)
  # A certificate authority for the TLS Redis test (tests/integration/test_redis_tls.py).
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "installing OS packages: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "please install: ${need[*]}" >&2
    exit 1
  fi
fi

"$PY" -c "from streams.services.local_kafka import kafka_libs; print('Kafka jars in', kafka_libs())"
