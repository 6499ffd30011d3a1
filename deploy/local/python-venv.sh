#!/usr/bin/env bash
# Makes sure PYTHON can create a virtual environment: stock Debian and Ubuntu ship Python
# without `venv`/`ensurepip` (the python3-venv package). Installs it when missing.
# Usage: python-venv.sh PYTHON
set -euo pipefail
PY="${1:-python3}"
"$PY" -c 'import ensurepip, venv' >/dev/null 2>&1 && exit 0
version="$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
echo "installing OS packages: python${version}-venv (to create .venv)"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if command -v apt-get >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "python${version}-venv" >/dev/null \
    || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
else
  echo "please install Python's venv module for $PY" >&2
  exit 1
fi
