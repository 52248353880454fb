#!/usr/bin/env bash
# The two quick-start commands:  bash dev.sh demo   |   bash dev.sh test
# Each sets up .venv first (idempotent: skipped when pyproject.toml has not changed).
set -euo pipefail
cd "$(dirname "$0")"

VENV=.venv
PY=$VENV/bin/python
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false

setup() {
    local stamp=$VENV/.articlebot-installed
    local want
    want=$(sha256sum pyproject.toml | cut -d' ' -f1)
    if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
        return
    fi
    echo "setting up $VENV (first run takes a few minutes)" >&2
    [[ -x $PY ]] || python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
    # The CPU build first: otherwise sentence-transformers pulls a multi-GB CUDA torch.
    "$PY" -m pip install -q "torch==2.13.0"
    "$PY" -m pip install -q -e ".[test]"
    echo "$want" >"$stamp"
}

case "${1:-}" in
    setup)
        setup
        ;;
    demo)
        # The main job on the embedded default: bundled sample articles, no token, no network.
        setup
        shift
        "$VENV/bin/articlebot" --data-dir "${ARTICLEBOT_DEMO_DIR:-data-demo}" demo "$@"
        ;;
    test)
        setup
        # The real llama.cpp server for the LLM tests: built once into a wheel cache outside the clone.
        LLAMA_BUILD_JOBS=${LLAMA_BUILD_JOBS:-2} bash .ci/llama.sh "$PY"
        shift
        "$VENV/bin/ruff" check .
        "$VENV/bin/ruff" format --check .
        "$VENV/bin/pytest" -q "$@"
        ;;
    *)
        echo "usage: bash dev.sh (demo [QUESTION…] | test [PYTEST ARGS…] | setup)" >&2
        exit 2
        ;;
esac
