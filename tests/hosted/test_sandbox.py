"""The python tool's sandbox, for real: namespaces, rlimits and the wall clock on this machine.

Every test runs code in a real sandboxed REPL (proxy/hosted/sandbox_process.py) and checks
what it printed and what it could not do: reach a listener the test opened, read a file the
test wrote, write outside its scratch directory, or outlive its limits.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from proxy.hosted.sandbox import Sandbox, SandboxSettings, check_isolation
from proxy.hosted.sandbox_process import ProcessLimits

SETTINGS = SandboxSettings(
    process=ProcessLimits(memory_bytes=256 << 20, processes=8, scratch_bytes=8 << 20),
    timeout_seconds=4.0,
    max_output_bytes=2000,
    max_code_bytes=4096,
    max_per_owner=2,
    max_total=3,
)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    pool = Sandbox(SETTINGS)
    yield pool
    await pool.aclose()


async def run(sandbox: Sandbox, code: str, owner: str = "alice") -> str:
    container = sandbox.new_container(owner)
    return (await sandbox.execute(owner, container, code)).output


async def test_the_isolation_check_passes_on_this_machine():
    await check_isolation(SETTINGS)


async def test_a_computation_prints_its_result_and_the_last_expression(sandbox):
    output = await run(sandbox, "import math\nprint('root', math.isqrt(144))\nsum(range(10)) * 3")
    assert output == "root 12\n135\n"


async def test_state_is_kept_across_cells_of_one_container(sandbox):
    container = sandbox.new_container("alice")
    first = await sandbox.execute("alice", container, "total = 40\ndef bump(x):\n    return x + 2")
    second = await sandbox.execute("alice", container, "bump(total)")
    assert (first.output, second.output) == ("", "42\n")


async def test_another_owner_cannot_see_or_use_a_container(sandbox):
    container = sandbox.new_container("alice")
    await sandbox.execute("alice", container, "secret = 'alice-only'")
    assert sandbox.owns("alice", container) and not sandbox.owns("mallory", container)
    theirs = await sandbox.execute("mallory", container, "secret")
    unknown = await sandbox.execute("mallory", "cntr_" + "0" * 48, "secret")
    assert "alice-only" not in theirs.output
    assert theirs.error == unknown.error == "container_not_found"
    assert theirs.output.replace(container, "X") == unknown.output.replace("cntr_" + "0" * 48, "X")


async def test_a_tcp_connection_to_a_host_listener_fails(sandbox):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "    print('connected')\n"
            "except OSError as exc:\n"
            "    print('refused:', exc)\n"
        )
        output = await run(sandbox, code)
        assert output.startswith("refused:"), output
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing ever arrived
    finally:
        listener.close()


async def test_a_file_outside_the_scratch_directory_cannot_be_read(sandbox, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    code = (
        "import os\n"
        f"for path in [{str(secret)!r}, '/etc/passwd', '/proc/1/root/etc/hostname']:\n"
        "    try:\n"
        "        print(open(path).read())\n"
        "    except OSError as exc:\n"
        "        print(type(exc).__name__)\n"
        "print(sorted(os.listdir('/')))"
    )
    output = await run(sandbox, code)
    assert "TOP-SECRET-VALUE" not in output
    assert output.splitlines()[:2] == ["FileNotFoundError", "FileNotFoundError"]
    assert "'work'" not in output and "'home'" not in output and "'etc'" not in output


async def test_only_the_scratch_directory_is_writable(sandbox):
    code = (
        "open('/mnt/data/note.txt', 'w').write('kept')\n"
        "for path in ['/usr/evil', '/tmp/evil', '/evil']:\n"
        "    try:\n"
        "        open(path, 'w')\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print(exc.strerror)\n"
        "open('note.txt').read()"
    )
    output = await run(sandbox, code)
    assert output == "Read-only file system\n" * 3 + "'kept'\n"


async def test_a_fork_bomb_hits_the_process_limit(sandbox):
    container = sandbox.new_container("alice")
    bomb = await sandbox.execute("alice", container, "import os\nwhile True:\n    os.fork()")
    assert "BlockingIOError" in bomb.output or "timed out" in bomb.output, bomb.output
    after = await sandbox.execute("alice", container, "print('still here')")
    assert after.output == "still here\n"


async def test_an_infinite_loop_is_killed_at_the_timeout_and_the_session_restarts(sandbox):
    container = sandbox.new_container("alice")
    await sandbox.execute("alice", container, "x = 1")
    loop = asyncio.get_running_loop()
    started = loop.time()
    stuck = await sandbox.execute("alice", container, "while True:\n    pass")
    assert loop.time() - started < SETTINGS.timeout_seconds + 10  # (killing takes a moment)
    assert stuck.error == "timeout"
    assert "timed out after 4 seconds" in stuck.output and "state is lost" in stuck.output
    again = await sandbox.execute("alice", container, "'x' in globals()")
    assert again.output == "False\n"


async def test_a_memory_hog_gets_a_memory_error_and_the_session_survives(sandbox):
    container = sandbox.new_container("alice")
    await sandbox.execute("alice", container, "kept = 7")
    hog = await sandbox.execute(
        "alice", container, "blocks = []\nwhile True:\n    blocks.append(bytearray(16 << 20))"
    )
    assert "MemoryError" in hog.output
    after = await sandbox.execute("alice", container, "del blocks\nkept")
    assert after.output == "7\n"


async def test_an_output_flood_is_cut_and_says_so(sandbox):
    flood = await run(sandbox, "for i in range(200000):\n    print('line', i)")
    assert len(flood) < SETTINGS.max_output_bytes + 200
    assert flood.startswith("line 0\nline 1\n")
    assert "[output truncated:" in flood and "more bytes not shown]" in flood


async def test_code_over_the_size_limit_is_not_run(sandbox):
    output = await run(sandbox, "x = 1\n" * 2000)
    assert output.startswith("[not run: the code is 12000 bytes; the limit is 4096]")


async def test_code_that_exits_the_interpreter_is_reported_and_restarted(sandbox):
    container = sandbox.new_container("alice")
    ended = await sandbox.execute("alice", container, "import os\nos._exit(3)")
    assert ended.error == "process_exited" and "exited with code 3" in ended.output
    assert (await sandbox.execute("alice", container, "1 + 1")).output == "2\n"


async def test_a_new_container_past_the_owner_cap_retires_the_least_recently_used(sandbox):
    first = sandbox.new_container("alice")
    second = sandbox.new_container("alice")
    await sandbox.execute("alice", second, "1")
    third = sandbox.new_container("alice")
    assert not sandbox.owns("alice", first)
    assert sandbox.owns("alice", second) and sandbox.owns("alice", third)


async def test_a_cancelled_cell_takes_its_sandbox_with_it(sandbox):
    container = sandbox.new_container("alice")
    await sandbox.execute("alice", container, "kept = 1")
    running = asyncio.ensure_future(
        sandbox.execute("alice", container, "import time\nwhile True:\n    time.sleep(0.01)")
    )
    await asyncio.sleep(0.5)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    after = await sandbox.execute("alice", container, "print('fresh', 'kept' in globals())")
    assert after.output == "fresh False\n"


async def test_processes_a_cell_started_do_not_outlive_it(sandbox):
    container = sandbox.new_container("alice")
    await sandbox.execute(
        "alice",
        container,
        "import subprocess\nspinners = [subprocess.Popen(['/bin/sh', '-c', 'while :; do :; done'])"
        " for _ in range(3)]\nkept = 1",
    )
    after = await sandbox.execute(
        "alice",
        container,
        "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]), kept)",
    )
    assert after.output == "1 1\n"  # the notebook alone, its state kept
