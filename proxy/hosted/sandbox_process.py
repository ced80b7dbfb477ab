"""One sandboxed Python REPL process: the isolation it starts in, and running a cell in it.

The process is built from util-linux's `unshare` and `setpriv`, so the proxy needs no helper
binary of its own. Stage 1 (`unshare --mount --net --ipc --uts`, inside a user namespace too
when the proxy is not root) runs `_SETUP`: a fresh tmpfs becomes the root, holding read-only
binds of /usr, /lib*, /bin, /sbin and the Python install, four device nodes and a size-limited
tmpfs at /mnt/data (the scratch directory, where gpt-oss's python tool description says user
files go); it pivots into it, detaches the host's tree and remounts the root read-only, so the
scratch directory is the only writable place and no host file (the proxy's keys, its store,
/home, /work) exists in there. Stage 2 (`unshare --user --pid --mount --mount-proc`, as uid
65534 when the proxy is root, because RLIMIT_NPROC does not apply to host root) gives the REPL
its own pid namespace and /proc; `setpriv` then drops every capability and sets no_new_privs
before Python starts. The network namespace has only a down loopback: no connection leaves.
The REPL sets its own rlimits (address space, CPU seconds, processes, file size, open files).

Killing the process group ends it all: the stage-2 `unshare` dies, `--kill-child` kills the
namespace's pid 1, and the kernel kills every other process in the namespace with it.

Cells go in on a private copy of stdin (length-prefixed), the code's stdout and stderr come back
merged on stdout, and the REPL ends each cell with a marker carrying a per-cell nonce, so the
reader knows where a cell's output stops without parsing it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import sys
from dataclasses import dataclass

_SETUP = r"""
set -eu
new=/tmp
mount -t tmpfs -o size=4m,mode=755 sandbox-root "$new"
for d in /usr /lib /lib64 /lib32 /libx32 /bin /sbin "$SANDBOX_PYTHON_PREFIX"; do
  if [ -L "$d" ]; then mkdir -p "$new$(dirname "$d")"; ln -s "$(readlink "$d")" "$new$d"
  elif [ -d "$d" ]; then mkdir -p "$new$d"; mount --bind -o ro "$d" "$new$d"; fi
done
mkdir -p "$new/dev" "$new/mnt/data" "$new/tmp" "$new/proc"
for n in null zero urandom random; do
  touch "$new/dev/$n"; mount --bind "/dev/$n" "$new/dev/$n"
done
mount -t tmpfs -o "size=$SANDBOX_SCRATCH_BYTES,nr_inodes=4096,mode=1777" scratch "$new/mnt/data"
mount -t proc proc "$new/proc"
cd "$new"
pivot_root . .
umount -l .
mount -o remount,ro,bind /
cd /mnt/data
exec "$@"
"""

# The REPL inside. Runs with `python -I -u -c`, argv[1] its limits as JSON.
_DRIVER = r"""
import ast, json, linecache, os, resource, sys, traceback
for name, value in json.loads(sys.argv[1]).items():
    resource.setrlimit(getattr(resource, name), (value, value))
control = os.fdopen(os.dup(0), "rb", buffering=0)
null = os.open("/dev/null", os.O_RDONLY)
os.dup2(null, 0)
os.close(null)
os.dup2(1, 2)
marker_fd = os.dup(1)
driver_pid = os.getpid()
namespace = {"__name__": "__main__", "__builtins__": __builtins__}

def read_exactly(n):
    data = b""
    while len(data) < n:
        piece = control.read(n - len(data))
        if not piece:
            sys.exit(0)
        data += piece
    return data

def run(source, name):
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    try:
        tree = ast.parse(source, name, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, name, "exec"), namespace)
        if last is not None:
            value = eval(compile(last, name, "eval"), namespace)
            if value is not None:
                namespace["_"] = value
                print(repr(value))
    except BaseException as exc:
        if os.getpid() != driver_pid:
            os._exit(1)
        if isinstance(exc, SyntaxError):
            print("".join(traceback.format_exception_only(type(exc), exc)), end="")
        else:
            tb = exc.__traceback__
            while tb is not None and tb.tb_frame.f_code.co_filename != name:
                tb = tb.tb_next
            traceback.print_exception(type(exc), exc, tb)
    if os.getpid() != driver_pid:
        os._exit(0)

def end_strays():
    # Processes a cell started do not outlive it: this REPL is its pid namespace's only
    # resident between cells (no CPU or memory kept busy behind the notebook's back).
    me = os.getpid()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me:
            try:
                os.kill(int(name), 9)
            except OSError:
                pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break

count = 0
while True:
    header = control.readline()
    if not header:
        break
    nonce, length = header.split()
    count += 1
    run(read_exactly(int(length)).decode("utf-8", "replace"), f"<cell {count}>")
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    end_strays()
    os.write(marker_fd, b"\0" + nonce + b"\0")
"""


class IsolationUnavailable(RuntimeError):
    """The sandbox's isolation cannot be set up here (missing tools, namespaces refused)."""


class SandboxStartFailed(RuntimeError):
    """A sandbox did not come up (its set-up failed, or it took longer than STARTUP_SECONDS)."""


# How long a sandbox may take to come up, apart from its cells' own timeout.
STARTUP_SECONDS = 30.0


@dataclass(frozen=True)
class ProcessLimits:
    """What one sandbox process may use."""

    memory_bytes: int = 512 << 20
    # CPU seconds over the process's whole life (a session), on top of each cell's wall clock.
    cpu_seconds: int = 300
    processes: int = 16
    file_bytes: int = 64 << 20
    open_files: int = 64
    # The scratch directory's tmpfs size (also counted in the sandbox's memory).
    scratch_bytes: int = 64 << 20

    def rlimits(self) -> dict[str, int]:
        return {
            "RLIMIT_AS": self.memory_bytes,
            "RLIMIT_CPU": self.cpu_seconds,
            "RLIMIT_NPROC": self.processes,
            "RLIMIT_FSIZE": self.file_bytes,
            "RLIMIT_NOFILE": self.open_files,
            "RLIMIT_CORE": 0,
        }


@dataclass(frozen=True)
class CellOutput:
    """What a cell printed (stdout and stderr merged, truncated to the limit)."""

    text: str
    # Bytes left out past the output limit.
    dropped: int = 0
    timed_out: bool = False
    # The process ended during the cell (killed by a limit, or the code exited it): its code.
    exit_code: int | None = None


def isolation_command(limits: ProcessLimits) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that start a sandboxed REPL; IsolationUnavailable when a
    needed tool is missing."""
    tools = {name: shutil.which(name) for name in ("unshare", "setpriv", "sh")}
    missing = [name for name, path in tools.items() if path is None]
    if missing:
        raise IsolationUnavailable(f"{', '.join(missing)} not found (util-linux is needed)")
    # The proxy's own base install, stdlib only (its virtualenv is not bound in).
    prefix = os.path.realpath(sys.base_prefix)
    python = os.path.join(prefix, "bin", "python{}.{}".format(*sys.version_info[:2]))
    root = os.geteuid() == 0
    stage1 = [tools["unshare"] or "", "--mount", "--propagation", "private"]
    if not root:
        # Mounting /proc needs a pid namespace owned by the user namespace that mounts it.
        stage1 += ["--user", "--map-root-user", "--pid", "--fork", "--kill-child"]
    stage1 += ["--net", "--ipc", "--uts", tools["sh"] or "", "-c", _SETUP, "sandbox-setup"]
    # As host root, the REPL runs as uid 65534: host root is exempt from RLIMIT_NPROC.
    demote = ["--reuid=65534", "--regid=65534", "--clear-groups"] if root else []
    stage2 = ["setpriv", *demote, "--pdeathsig", "KILL", "unshare", "--user", "--map-root-user"]
    stage2 += ["--pid", "--fork", "--kill-child", "--mount", "--mount-proc"]
    drop = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs"]
    repl = [python, "-I", "-u", "-c", _DRIVER, json.dumps(limits.rlimits())]
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "LANG": "C.UTF-8",
        "HOME": "/mnt/data",
        "TMPDIR": "/mnt/data",
        "SANDBOX_PYTHON_PREFIX": prefix,
        "SANDBOX_SCRATCH_BYTES": str(limits.scratch_bytes),
    }
    return [*stage1, *stage2, *drop, *repl], env


class ReplProcess:
    """One running sandboxed REPL; `run` executes one cell at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def start(cls, limits: ProcessLimits) -> ReplProcess:
        argv, env = isolation_command(limits)
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        # An empty first cell: the mounts and the interpreter's start (seconds on a loaded
        # host) are not charged to the user's first cell's timeout.
        repl = cls(process)
        try:
            ready = await repl.run("", timeout=STARTUP_SECONDS, max_output=4096)
        except BaseException:  # (cancelled while starting: the process must not outlive it)
            repl.terminate()
            raise
        if ready.timed_out or ready.exit_code is not None or ready.text:
            await repl.kill()
            raise SandboxStartFailed(f"the sandbox did not start: {ready.text[:300]!r}")
        return repl

    @property
    def alive(self) -> bool:
        return self._process.returncode is None

    async def run(self, code: str, *, timeout: float, max_output: int) -> CellOutput:
        """Run one cell; on timeout the whole sandbox is killed (its state is lost)."""
        nonce = secrets.token_hex(16).encode()
        data = code.encode("utf-8", "replace")
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        try:
            stdin.write(nonce + b" %d\n" % len(data) + data)
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            return await self._ended(bytearray(), 0)
        reader = _OutputReader(b"\0" + nonce + b"\0", max_output)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not reader.done:
            remaining = deadline - loop.time()
            try:
                chunk = await asyncio.wait_for(stdout.read(1 << 16), max(remaining, 0))
            except TimeoutError:
                await self.kill()
                return CellOutput(reader.text(), reader.dropped, timed_out=True)
            if not chunk:
                return await self._ended(reader.kept, reader.dropped)
            reader.feed(chunk)
        return CellOutput(reader.text(), reader.dropped)

    async def _ended(self, kept: bytearray, dropped: int) -> CellOutput:
        await self.kill()
        code = self._process.returncode
        return CellOutput(kept.decode("utf-8", "replace"), dropped, exit_code=code)

    def terminate(self) -> None:
        """Kill the sandbox's process group (the namespace dies with its pid 1); asyncio's
        child watcher reaps it."""
        if self._process.returncode is None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def kill(self) -> None:
        """`terminate`, and wait until it is gone."""
        self.terminate()
        await self._process.wait()


class _OutputReader:
    """Keeps the first `limit` bytes of a cell's output, counts the rest, finds the marker."""

    def __init__(self, marker: bytes, limit: int) -> None:
        self._marker = marker
        self._limit = limit
        self._window = bytearray()
        self.kept = bytearray()
        self.dropped = 0
        self.done = False

    def feed(self, chunk: bytes) -> None:
        self._window += chunk
        at = self._window.find(self._marker)
        if at != -1:
            self._keep(self._window[:at])
            self._window.clear()
            self.done = True
            return
        # The marker may straddle chunks: hold back its length less one byte.
        cut = max(len(self._window) - len(self._marker) + 1, 0)
        self._keep(self._window[:cut])
        del self._window[:cut]

    def _keep(self, data: bytes | bytearray) -> None:
        room = max(self._limit - len(self.kept), 0)
        self.kept += data[:room]
        self.dropped += max(len(data) - room, 0)

    def text(self) -> str:
        return self.kept.decode("utf-8", "replace")
