#!/usr/bin/env bash
# One entry point for a fresh machine: sets everything up, then runs.
#   bash scripts/tstream.sh dashboard  # the watch app and the monitor (Voila), offline demo clip
#   bash scripts/tstream.sh demo     # the main job on embedded defaults (no PostgreSQL/Redis)
#   bash scripts/tstream.sh test     # the whole test suite (what CI runs)
#   bash scripts/tstream.sh bench    # the streaming benchmark (bench/stream_bench.py)
#   bash scripts/tstream.sh setup    # only set up
# Set-up is idempotent: a virtualenv in .venv with the package and its test
# extras, and, when missing, Debian's chromium (browser tests) and nginx-light
# (benchmark baseline). Chromium is driven through Playwright's Python wheel
# with executable_path=/usr/bin/chromium: `playwright install` is never run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${TSTREAM_VENV:-.venv}

need_apt=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || need_apt+=(nginx-light)

setup() {
  if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO="none"; fi
    if [ "$SUDO" = none ]; then
      echo "tstream: missing Debian packages ${need_apt[*]} and no root/sudo to install them" >&2
      [ "${CI:-}" = "true" ] && exit 1
    else
      echo "tstream: installing ${need_apt[*]} (apt-get)" >&2
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
    fi
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  "$VENV/bin/python" -m pip install -q -e ".[test]"
  # an editable install skips data files: put the Jupyter server extension's
  # config where a normal install ships it (`jupyter server extension enable`
  # refuses an extension not yet in any config in jupyter_server 2.21)
  mkdir -p "$VENV/etc/jupyter/jupyter_server_config.d"
  cp jupyter-config/jupyter_server_config.d/tstream_kit.json "$VENV/etc/jupyter/jupyter_server_config.d/"
}

cmd=${1:-help}
shift || true
case "$cmd" in
  setup) setup ;;
  dashboard) setup; exec "$VENV/bin/tstream" dashboard "$@" ;;
  demo)  setup; exec "$VENV/bin/tstream" demo "$@" ;;
  test)  setup; exec "$VENV/bin/python" -m pytest "$@" ;;
  bench) setup; exec "$VENV/bin/python" bench/stream_bench.py "$@" ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
