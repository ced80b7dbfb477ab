"""`bench_ceiling.py --profile DIR`: py-spy a server while one level runs, then its top
functions and packages by self time (the raw stacks stay in DIR)."""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.ceiling_servers import ROOT, Server
from benchmarks.proc_cpu import process_tree


def profile_level(
    server: Server, measure: Callable[[], Any], streams: int, out_dir: Path, top: int
) -> None:
    """py-spy every process of `server` while `measure()` runs a level (its result has
    `tokens_per_s`), then print the `top` functions and the packages by self time."""
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        print("  (py-spy not installed: `pip install py-spy`; no profile)")
        return
    pids = [
        p for p in process_tree(server.pid) if p != server.pid or len(process_tree(server.pid)) == 1
    ]
    raw = out_dir / f"py-spy-{server.name.split(',')[0]}.txt"
    recorders = []
    for i, pid in enumerate(pids):
        target = raw.with_suffix(f".{i}.txt")
        command = [py_spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
        command += ["--nonblocking", "-o", str(target)]
        recorders.append(
            (subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), target)
        )
    time.sleep(1.0)
    level = measure()
    for process, _ in recorders:
        process.send_signal(2)  # SIGINT: py-spy writes its file and exits
    self_counts: collections.Counter[str] = collections.Counter()
    by_package: collections.Counter[str] = collections.Counter()
    total = 0
    for process, target in recorders:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        if not target.exists():
            print(
                f"  py-spy wrote nothing: {process.stderr.read().decode()[-500:] if process.stderr else ''}"
            )
            continue
        for line in target.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            leaf = _short(stack.split(";")[-1])
            self_counts[leaf] += int(count)
            by_package[_package(leaf)] += int(count)
            total += int(count)
    print(
        f"\n  py-spy, {server.name}, {streams} streams ({level.tokens_per_s:,.0f} tokens/s "
        f"while sampled; {total} samples): top functions by self time"
    )
    for name, count in self_counts.most_common(top):
        print(f"  {100 * count / max(1, total):5.1f} %  {name}")
    print("  self time by package:")
    for name, count in by_package.most_common():
        print(f"  {100 * count / max(1, total):5.1f} %  {name}")
    print(f"  raw stacks: {raw.parent}")


def _short(frame: str) -> str:
    """`send (/…/site-packages/uvicorn/protocols/http/httptools_impl.py:544)` →
    `send (uvicorn/protocols/http/httptools_impl.py)`: one row per function, not per line."""
    frame = re.sub(r"\(/.*?site-packages/", "(", frame)
    frame = re.sub(r"\(/.*?/lib/python3\.\d+/", "(", frame)
    frame = re.sub(r":\d+\)$", ")", frame)
    return frame.replace(str(ROOT) + "/", "")


def _package(frame: str) -> str:
    """The top-level package of a frame (`uvicorn`, `proxy`, `asyncio`, ...)."""
    path = frame.rpartition("(")[2].rstrip(")")
    return re.split(r"[/.]", path, maxsplit=1)[0] or frame
