#!/usr/bin/env bash
# Set up .venv on a fresh Debian machine with Python 3.11: Debian packages (when root), torch 2.13.0
# (CPU wheel) first, then this package with its dev and eval extras. Safe to re-run: it skips what is done.
set -euo pipefail
cd "$(dirname "$0")"

DEB_PACKAGES="espeak-ng opus-tools codec2"
missing=""
for pkg in $DEB_PACKAGES; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages:$missing"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "setup: please install the Debian packages:$missing (sudo apt-get install -y$missing);"
    echo "       phonemes and the Opus/Codec2 baselines are unavailable until then"
  fi
fi

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
pip_install() {  # quiet pip; on failure show its log and stop
  if ! .venv/bin/python -m pip install -q "$@" >.venv/pip.log 2>&1; then
    grep -v "^WARNING: Location" .venv/pip.log | tail -30
    echo "setup: pip install $* failed" >&2
    exit 1
  fi
}
if [ ! -f "$stamp" ]; then
  echo "setup: installing torch 2.13.0 (CPU) and the package (a few minutes the first time)"
  pip_install --upgrade pip
  pip_install torch==2.13.0
  pip_install -e ".[dev,eval]"
  pip_install --no-deps resemblyzer==0.1.4
  .venv/bin/python -c "import torch, transformers, tokenizer, data_prep"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
