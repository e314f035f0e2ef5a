#!/usr/bin/env bash
# Set-up for the test suite on a fresh machine: Python packages, and Debian's chromium for the
# HTML-report browser test. Idempotent; quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements.txt
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
