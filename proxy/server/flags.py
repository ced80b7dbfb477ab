"""How a `serve` flag is declared, read from its environment variable, and checked.

Each `Settings` field that is a flag is declared once with `flag(...)` (its default, its help,
its group in --help and how its text is read); the CLI builds its argument parser from these
declarations, and `Settings.from_sources` reads the same ones to take each value from the
command line, else from HARMONY_PROXY_<FLAG>, else the default. How environment values are
read is decided here, once for every flag:
- booleans: 1/true/yes/on or 0/false/no/off, any case; anything else is an error;
- lists (repeatable flags): comma-separated; the command line's values are added after them;
- an empty (or blank) variable counts as unset, except HARMONY_PROXY_API_KEY: an empty key
  would silently mean "no authentication" (e.g. `${SECRET:-}` with SECRET missing), so an
  empty value or an empty entry in its list is an error;
- a value that does not parse is an error naming the variable (the CLI exits 2, as argparse
  does for a bad flag).
The flags themselves are in serving_flags.py and engine_flags.py.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import pwd
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
ENV_PREFIX = "HARMONY_PROXY_"

# The --help groups, in order, with their descriptions.
GROUPS: dict[str, str | None] = {
    "server": None,
    "reliability (see README: Operating it)": None,
    "prompt": None,
    "responses API (/v1/responses)": None,
    "engine (vLLM)": None,
    "remote replicas": "Serve through running vLLM servers instead of loading an engine here. "
    "Several URLs form a pool: health checks, ejection and re-admission, "
    "least-outstanding-requests balancing with prefix affinity.",
}


class SettingsError(ValueError):
    """A configuration that cannot be served; the message names the flag or variable."""


def today() -> str:
    """Today's date (UTC) as YYYY-MM-DD, the default pinned conversation date."""
    return _dt.datetime.now(_dt.UTC).date().isoformat()


def _home(environ: Mapping[str, str]) -> Path:
    """$HOME from `environ`, else the account's home directory (not os.environ's)."""
    return Path(environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir)


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """$XDG_DATA_HOME/harmony-proxy (~/.local/share/harmony-proxy): the default store's home.

    The CLI passes its environment and keeps the result in `Settings.data_dir`. Without one
    (`environ=None`) the process environment is used: only `open_response_state`'s fallback
    for a PostgreSQL store without a key file does that, for callers that build `ProxyConfig`
    themselves; `Settings.proxy_config()` always names the key file, so the CLI never gets there.
    """
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or str(_home(env) / ".local" / "share")
    return Path(base) / "harmony-proxy"


def cache_dir(environ: Mapping[str, str]) -> Path:
    """~/.cache/harmony-proxy: where the demo checkpoint is built (as the demo loader's default)."""
    return _home(environ) / ".cache" / "harmony-proxy"


# -- reading values ------------------------------------------------------------------------

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_bool(text: str) -> bool:
    """1/true/yes/on or 0/false/no/off, any case and surrounding blanks; else ValueError."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected one of {'/'.join(_TRUE)} or {'/'.join(_FALSE)}")


def iso_date(text: str) -> str:
    _dt.date.fromisoformat(text)
    return text


_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def duration_seconds(text: str) -> float:
    """Seconds from `3600`, `90s`, `30m`, `12h`, `7d` or `2w`; ValueError for anything else."""
    value = text.strip().lower()
    scale = _DURATION_UNITS.get(value[-1:], None)
    number = value[:-1] if scale is not None else value
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        raise ValueError("expected seconds or a duration such as 90s, 30m, 12h, 7d, 2w") from None
    if not seconds == seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError("expected a finite duration")
    return seconds


Kind = Literal["value", "list", "switch", "tristate"]


@dataclass(frozen=True)
class Flag:
    """How one `Settings` field is set from the command line and from the environment.

    kind: "value" (one value, `convert`ed), "list" (repeatable; comma-separated in the
    environment), "switch" (`--x` / `--no-x`), "tristate" (a switch whose default, None, leaves
    the choice to vLLM).
    """

    group: str
    help: str
    kind: Kind = "value"
    convert: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    # Numbers: the smallest accepted value.
    minimum: float | None = None
    # Lists: an empty entry is an error instead of being skipped (API keys).
    refuse_empty: bool = False

    @staticmethod
    def option(name: str) -> str:
        return "--" + name.replace("_", "-")

    @staticmethod
    def variable(name: str) -> str:
        return ENV_PREFIX + name.upper()


def flag(
    default: Any,
    help: str,  # noqa: A002 - argparse's name for it
    *,
    group: str,
    kind: Kind = "value",
    convert: Callable[[str], Any] = str,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
    minimum: float | None = None,
    refuse_empty: bool = False,
) -> Any:
    """A `Settings` field that is a command-line flag with its environment variable."""
    assert group in GROUPS, group
    spec = Flag(group, help, kind, convert, choices, metavar, minimum, refuse_empty)
    return field(default=default, metadata={"flag": spec})


def from_environment(name: str, spec: Flag, environ: Mapping[str, str]) -> Any:
    """The value of `name`'s variable, or `dataclasses.MISSING` when it is unset (or blank)."""
    variable = Flag.variable(name)
    raw = environ.get(variable)
    if raw is None or (not raw.strip() and not spec.refuse_empty):
        return dataclasses.MISSING
    try:
        if spec.kind == "list":
            entries = [entry.strip() for entry in raw.split(",")]
            if spec.refuse_empty and not all(entries):
                raise ValueError(
                    "an empty entry (an empty value, a blank between commas or a trailing "
                    "comma) is refused: an empty key would mean no authentication; unset the "
                    "variable to serve without keys"
                )
            return tuple(entry for entry in entries if entry)
        if spec.kind in ("switch", "tristate"):
            return parse_bool(raw)
        value = spec.convert(raw.strip())
    except ValueError as exc:
        raise SettingsError(f"{variable}={raw!r}: {_reason(exc, spec)}") from None
    if spec.choices is not None and value not in spec.choices:
        raise SettingsError(f"{variable}={raw!r}: expected one of {', '.join(spec.choices)}")
    return value


def _reason(exc: ValueError, spec: Flag) -> str:
    if spec.convert is int:
        return "expected an integer"
    if spec.convert is float:
        return "expected a number"
    if spec.convert is iso_date:
        return "expected a date, YYYY-MM-DD"
    return str(exc)


# -- the settings ----------------------------------------------------------------------------

GROUP_SERVER = "server"
GROUP_LIMITS = "reliability (see README: Operating it)"
GROUP_PROMPT = "prompt"
GROUP_RESPONSES = "responses API (/v1/responses)"
GROUP_ENGINE = "engine (vLLM)"
GROUP_REPLICAS = "remote replicas"


def parse_engine_args(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`["block_size=32", "quantization=mxfp4"]` -> `{"block_size": 32, "quantization": "mxfp4"}`."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not key:
            raise SettingsError(f"--engine-arg expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out
