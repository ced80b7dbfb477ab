"""Replaying a Dockerfile's build steps in a scratch directory, where no container engine runs.

`DockerfileReplay` reads a Dockerfile and runs what its build does with the same commands and
the same environment: `ENV`/`ARG` values in order (`$VAR` expanded as Docker does), `WORKDIR`
and `COPY . DEST` (the build context, less what .dockerignore leaves out), each `RUN` through
`/bin/sh -c` in the current `WORKDIR`. The image's own directories (/app, /opt, /cache, /home,
/root) become directories of the scratch root, in commands and values alike; a fresh venv (no
system site packages) stands in for the base image's Python, first on the base PATH, followed
by this machine's /usr/bin and /bin (make, gcc, sh).

Not replayed: the parts of a `RUN` (its `&&`-chained commands) that are `apt-get ...` or clean
its lists (the base image's package manager, as root: the tools it would install are checked to
exist here instead) and `useradd ...` (the runtime user: root only; its home directory is
created instead); the rest of that `RUN` is. `USER`, `EXPOSE`, `HEALTHCHECK` and `CMD` are recorded
for the caller, which starts the entry point (`entry_point`) with the image's environment.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import venv
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

# Directories the images own; anything else (/usr/bin, /bin, /var) is this machine's.
IMAGE_ROOTS = ("app", "opt", "cache", "home", "root", "venv")
_IMAGE_PATH = re.compile(r"(?<![\w.$}/-])/(?:" + "|".join(IMAGE_ROOTS) + r")(?=[/\s:'\";]|$)")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
# Commands of a RUN (its `&&`-chained parts) that only root and the base image can run.
SKIPPED = ("apt-get", "useradd")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
        pending = ""
    return out


def _dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.exists():
        return []
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line.removeprefix("**/") for line in lines if line and not line.startswith("#")]


def copy_context(context: Path, dest: Path) -> None:
    """`COPY . DEST`: the context's files, less what .dockerignore names (its simple patterns:
    a name or `**/name` matches that name at any depth)."""
    patterns = _dockerignore(context)

    def ignored(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)}

    shutil.copytree(context, dest, ignore=ignored, dirs_exist_ok=True, symlinks=True)


def stand_in_wheel(
    directory: Path, name: str, version: str, requires: tuple[str, ...] = ()
) -> Path:
    """An empty distribution `name==version` (metadata only, no module) requiring `requires`:
    a cheap stand-in for an engine package whose real install takes minutes and gigabytes."""
    import zipfile

    normalized = re.sub(r"[-_.]+", "_", name)
    info = f"{normalized}-{version}.dist-info"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: replay\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    wheel = directory / f"{normalized}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, content in {**files, f"{info}/RECORD": record}.items():
            archive.writestr(path, content)
    return wheel


@dataclass
class DockerfileReplay:
    """One Dockerfile's build replayed under `root` (see the module docstring)."""

    dockerfile: Path
    context: Path
    root: Path
    # Applied after each of the Dockerfile's ENV (e.g. where pip finds stand-ins); None unsets.
    extra_env: dict[str, str | None] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    workdir: Path | None = None
    user: str | None = None
    cmd: list[str] = field(default_factory=list)
    replayed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def image_path(self, text: str) -> str:
        """`text` with the image's own directories moved under the scratch root."""
        return _IMAGE_PATH.sub(lambda m: str(self.root) + m.group(0), text)

    def expand(self, text: str) -> str:
        return _VARIABLE.sub(lambda m: self.env.get(m.group(1) or m.group(2), ""), text)

    def base_image(self) -> None:
        """The base image's Python (a fresh venv with pip) and environment."""
        base = self.root / "base"
        venv.EnvBuilder(with_pip=True, symlinks=True).create(base)
        self.env = {
            "PATH": f"{base / 'bin'}:/usr/bin:/bin",
            "HOME": str(self.root / "root"),
            "LANG": "C.UTF-8",
        }
        # This machine's package registries: pip's settings in the environment, and its user
        # configuration, which the image's HOME would hide.
        self.env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_")})
        config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        user_config = config_home / "pip" / "pip.conf"
        if "PIP_CONFIG_FILE" not in self.env and user_config.exists():
            self.env["PIP_CONFIG_FILE"] = str(user_config)
        (self.root / "root").mkdir(parents=True, exist_ok=True)
        self._apply_extra_env()

    def _apply_extra_env(self) -> None:
        for name, value in self.extra_env.items():
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = value

    def run(self, log: Path) -> None:
        """Replay every instruction; a failing RUN raises with the tail of its output."""
        self.base_image()
        with log.open("w") as out:
            for instruction in instructions(self.dockerfile.read_text()):
                self.apply(instruction, out)

    def apply(self, instruction: Instruction, out: TextIO) -> None:
        keyword, args = instruction.keyword, instruction.args
        if keyword in ("ENV", "ARG"):
            for item in shlex.split(args):
                name, sep, value = item.partition("=")
                if keyword == "ARG" and (not sep or name in self.env):
                    continue
                self.env[name] = self.expand(self.image_path(value))
            self._apply_extra_env()
        elif keyword == "WORKDIR":
            self.workdir = Path(self.image_path(args))
            self.workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            source, dest = shlex.split(args)
            assert source == ".", "only `COPY . DEST` is replayed"
            copy_context(self.context, Path(self.image_path(dest)))
        elif keyword == "RUN":
            self._run_step(args, out)
        elif keyword == "USER":
            self.user = args
        elif keyword == "CMD":
            self.cmd = json.loads(args)

    def _run_step(self, command: str, out: TextIO) -> None:
        """Run `command` less its root-only parts (`apt-get ...` and the clean-up of its lists,
        `useradd`, whose home directory is made instead)."""
        kept = []
        for part in command.split(" && "):
            if part.split()[0] in SKIPPED or "/var/lib/apt" in part:
                self.skipped.append(part)
                home = re.search(r"--home-dir\s+(\S+)", part)
                if part.startswith("useradd") and home:
                    Path(self.image_path(home.group(1))).mkdir(parents=True, exist_ok=True)
            else:
                kept.append(part)
        if not kept:
            return
        command = " && ".join(kept)
        mapped = self.image_path(command)
        print(f"\n$ {mapped}", file=out, flush=True)
        started = time.monotonic()
        result = subprocess.run(
            ["/bin/sh", "-c", mapped],
            cwd=self.workdir or self.root,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=900,
        )
        print(f"# {time.monotonic() - started:.0f} s", file=out, flush=True)
        if result.returncode != 0:
            raise AssertionError(f"RUN {command!r} failed ({result.returncode})")
        self.replayed.append(command)

    def entry_point(self) -> str:
        """The CMD's program as the image's PATH resolves it."""
        found = shutil.which(self.cmd[0], path=self.env["PATH"])
        assert found is not None, f"{self.cmd[0]} is not on the image's PATH {self.env['PATH']}"
        return found


def python_of(script: str) -> str:
    """The interpreter a console script runs with (its shebang)."""
    first = Path(script).read_text().splitlines()[0]
    return first.removeprefix("#!").strip() or sys.executable
