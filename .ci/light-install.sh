#!/usr/bin/env bash
# The README's first command on a light install, as a new user runs it: a fresh venv with only
# selfinstruct[embedded] (no torch, transformers, PEFT, TRL or spaCy) runs a short `generate` to the end, and
# every command that needs a missing extra says which one, in one line, with exit code 2.
# Usage: .ci/light-install.sh REPO_DIR (llama-cpp-python's wheel comes from pip's cache: the full install
# built it).
set -euo pipefail
REPO="$(cd "${1:-$(dirname "$0")/..}" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

python3 -m venv "$WORK/venv"
. "$WORK/venv/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q -e "$REPO[embedded]"
python - <<'EOF'
import importlib.util
import sys

heavy = [name for name in ("torch", "transformers", "peft", "trl", "spacy") if importlib.util.find_spec(name)]
sys.exit(f"error: the light install pulled in {', '.join(heavy)}" if heavy else 0)
EOF

selfinstruct generate --out "$WORK/run" --num-instructions 3 --no-progress
test -s "$WORK/run/export/all_generated_instances.jsonl"
selfinstruct rate "$WORK/run" --judge checks --no-progress
selfinstruct report "$WORK/run" --out "$WORK/report.html" 2>"$WORK/report.err"
grep -q "selfinstruct\[analysis\]" "$WORK/report.err"

# Each command that needs an extra: exit 2 and one line naming the extra.
needs_extra() {
    local extra="$1"
    shift
    local code=0
    "$@" >/dev/null 2>"$WORK/err" || code=$?
    if [ "$code" -ne 2 ] || [ "$(wc -l <"$WORK/err")" -ne 1 ] || ! grep -q "pip install 'selfinstruct\[$extra\]'" "$WORK/err"; then
        echo "error: '$*' should name the [$extra] extra in one line with exit 2; it exited $code with:" >&2
        cat "$WORK/err" >&2
        exit 1
    fi
}
needs_extra hf selfinstruct finetune --data "$WORK/run" --out "$WORK/model"
needs_extra hf selfinstruct generate --out "$WORK/hf" --backend transformers --model some/model --no-progress
needs_extra hf selfinstruct eval superni --tasks "$REPO/tests/data/superni" --backend transformers --model m \
    --out "$WORK/eval.json"
needs_extra hf selfinstruct reproduce --out "$WORK/loop"
echo "light install: generate, rate, report and the extras' hints work without torch, transformers and spaCy"
