"""A fork server for the crash tests: imports the heavy libraries once, then runs each ``articlebot``
command in a forked child that the test can SIGKILL.

Loading torch and sentence-transformers takes seconds; the command itself (model load, import,
remove) well under one. Forking from a process that has imported but not yet used them gives each
run the real CLI code path (``bot.cli.main``) in its own process, as ``articlebot`` would run it,
without paying the import every time.

Protocol, one JSON object per line: the test writes ``{"argv": [...], "out": path, "err": path}``;
the server answers ``{"pid": N}`` once the child runs and ``{"pid": N, "status": S}`` when it ended
(S: exit code, or minus the signal number). Closing stdin ends the server.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    for name, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
        ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
        ("TOKENIZERS_PARALLELISM", "false"),
    ):
        os.environ.setdefault(name, value)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import faiss  # noqa: F401
    import numpy  # noqa: F401
    import sentence_transformers  # noqa: F401
    import torch  # noqa: F401

    from bot import cli

    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(cli, request)
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        out.write(json.dumps({"pid": pid, "status": code}) + "\n")
        out.flush()


def _child(cli, request: dict) -> None:
    code = 70
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 1)
        os.dup2(os.open(request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), 2)
        sys.stdin = open(os.devnull)  # noqa: SIM115
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        code = cli.main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 71
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


if __name__ == "__main__":
    main()
