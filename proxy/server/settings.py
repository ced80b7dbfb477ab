"""Server configuration: `Settings` (every `serve` flag) and `ProxyConfig` (what the app needs).

Why two values: `create_app` takes a `ProxyConfig`, which tests build directly with whatever
they need; `Settings` is the whole command line, the one value the CLI hands to the serving
code, to the workers of `serve --workers N` and to the engine process (it pickles, for
multiprocessing's spawn), and `Settings.proxy_config()` derives the app's part of it.

Each `Settings` field that is a flag is declared once, here, with `flag(...)`: its default, its
help and how its text is read. The CLI builds its argument parser from these declarations, and
`Settings.from_sources` reads the same declarations to take each value from the command line,
else from the environment variable HARMONY_PROXY_<FLAG> (`--max-model-len` is
HARMONY_PROXY_MAX_MODEL_LEN), else the default. The environment arrives as an argument:
nothing below the CLI reads `os.environ`, so servers with different settings can be built side
by side (tests) and a worker sees exactly what its supervisor parsed.

How environment values are read, the same way for every flag:
- booleans: 1/true/yes/on or 0/false/no/off, any case; anything else is an error;
- lists (repeatable flags): comma-separated; the command line's values are added after them;
- an empty (or blank) variable counts as unset, except HARMONY_PROXY_API_KEY: an empty key
  would silently mean "no authentication" (e.g. `${SECRET:-}` with SECRET missing), so an
  empty value or an empty entry in its list is an error;
- a value that does not parse is an error naming the variable (the CLI exits 2, as argparse
  does for a bad flag).
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

from proxy.backends.affinity import DEFAULT_BLOCK_TOKENS, DEFAULT_LOAD_FACTOR
from proxy.core.conversation import SystemDefaults
from proxy.core.gate import Limits
from proxy.core.service import ServiceSettings

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


def _iso_date(text: str) -> str:
    _dt.date.fromisoformat(text)
    return text


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


def flags() -> list[tuple[str, Flag]]:
    """(field name, declaration) for every flag, in --help order."""
    return [
        (f.name, f.metadata["flag"]) for f in dataclasses.fields(Settings) if "flag" in f.metadata
    ]


def _from_environment(name: str, spec: Flag, environ: Mapping[str, str]) -> Any:
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
    if spec.convert is _iso_date:
        return "expected a date, YYYY-MM-DD"
    return str(exc)


# -- the settings ----------------------------------------------------------------------------

_SERVER = "server"
_LIMITS = "reliability (see README: Operating it)"
_PROMPT = "prompt"
_RESPONSES = "responses API (/v1/responses)"
_ENGINE = "engine (vLLM)"
_REPLICAS = "remote replicas"


@dataclass(frozen=True)
class Settings:
    """Everything `harmony-proxy serve` was told, parsed and checked once at start-up.

    Built by `from_sources` (the CLI) or directly (tests: the defaults are the CLI's). Frozen:
    code that needs a variant (a worker is one process, not N) makes one with `replace`.
    """

    # -- server
    host: str = flag("127.0.0.1", "interface to bind (default: 127.0.0.1)", group=_SERVER)
    port: int = flag(8000, "TCP port (default: 8000)", group=_SERVER, convert=int, minimum=0)
    api_key: tuple[str, ...] = flag(
        (),
        "require `Authorization: Bearer <key>` on /v1 (repeatable; an empty key is an error); "
        "default: no auth",
        group=_SERVER,
        kind="list",
        refuse_empty=True,
    )
    cors_origin: tuple[str, ...] = flag(
        (),
        "allow browser calls from this origin (repeatable, `*` for any); default: CORS off",
        group=_SERVER,
        kind="list",
    )
    workers: int = flag(
        1,
        "proxy processes sharing the port (default: 1); each renders, parses and streams "
        "on its own core, in front of the same replicas (--backend-url) or, without one, of "
        "one engine process this command starts (vLLM's server with the token endpoint); "
        "/metrics shows the totals over all workers",
        group=_SERVER,
        convert=int,
        minimum=1,
    )
    log_level: str = flag(
        "info",
        "log level (default: info); vLLM's and the engine libraries' start-up and shutdown "
        "messages show only with `debug`",
        group=_SERVER,
        convert=str.lower,
        choices=LOG_LEVELS,
    )
    max_connections: int = flag(
        1024,
        "open connections (idle keep-alive ones included) before uvicorn answers every new "
        "request with a plain 503 (default: 1024; keep it above --max-concurrent-requests "
        "plus --max-queued-requests, with room for health probes)",
        group=_SERVER,
        convert=int,
        minimum=1,
    )

    # -- reliability
    max_concurrent_requests: int = flag(
        256,
        "requests generating at once (default: 256; 0: no limit); more wait in the queue",
        group=_LIMITS,
        convert=int,
        minimum=0,
    )
    max_queued_requests: int = flag(
        512,
        "requests waiting for a slot (default: 512); beyond: 429 with Retry-After",
        group=_LIMITS,
        convert=int,
        minimum=0,
    )
    queue_timeout: float = flag(
        60.0,
        "seconds a request may wait for a slot before its 429 (default: 60)",
        group=_LIMITS,
        convert=float,
        minimum=0,
    )
    max_body_bytes: int = flag(
        8 * 1024 * 1024,
        "largest request body accepted, else 413 (default: 8 MiB; 0: no limit)",
        group=_LIMITS,
        convert=int,
        minimum=0,
    )
    body_deadline: float = flag(
        30.0,
        "seconds a request's body may take to arrive after its headers, else 408 (default: "
        "30; 0: no deadline)",
        group=_LIMITS,
        convert=float,
        minimum=0,
    )
    max_messages: int = flag(
        2048,
        "most messages in one request, else 400 (default: 2048; 0: no limit)",
        group=_LIMITS,
        convert=int,
        minimum=0,
    )
    max_tools: int = flag(
        128,
        "most tools (namespace members included) in one request, else 400 (default: "
        "128, OpenAI's; 0: no limit)",
        group=_LIMITS,
        convert=int,
        minimum=0,
    )
    max_tool_bytes: int = flag(
        1024 * 1024,
        "most bytes of tool declarations (names, descriptions, schemas) in one request, "
        "else 400 (default: 1 MiB; 0: no limit)",
        group=_LIMITS,
        convert=int,
        minimum=0,
    )
    max_schema_depth: int = flag(
        64,
        "deepest nesting of a tool's or an answer's JSON schema, else 400 (default: 64; "
        "0: no limit)",
        group=_LIMITS,
        convert=int,
        minimum=0,
    )
    max_grammar_bytes: int = flag(
        256 * 1024,
        "most bytes of custom-tool grammars (Lark, regex) in one request, else 400 "
        "(default: 256 KiB; 0: no limit)",
        group=_LIMITS,
        convert=int,
        minimum=0,
    )
    max_stop_strings: int = flag(
        4,
        "most stop strings in one request, else 400 (default: 4, OpenAI's)",
        group=_LIMITS,
        convert=int,
        minimum=1,
    )
    max_stop_length: int = flag(
        1024,
        "longest stop string, else 400 (default: 1024 characters; 0: no limit)",
        group=_LIMITS,
        convert=int,
        minimum=0,
    )
    max_past_tool_calls: int = flag(
        4096,
        "most tool calls in one request's history, else 400 (default: 4096; 0: no limit)",
        group=_LIMITS,
        convert=int,
        minimum=0,
    )
    max_n: int = flag(
        16,
        "most choices (`n`) in one request, else 400 (default: 16)",
        group=_LIMITS,
        convert=int,
        minimum=1,
    )
    max_metadata_pairs: int = flag(
        16,
        "most `metadata` pairs, else 400 (default: 16, OpenAI's)",
        group=_LIMITS,
        convert=int,
        minimum=1,
    )
    max_metadata_key_length: int = flag(
        64,
        "longest `metadata` key, else 400 (default: 64, OpenAI's)",
        group=_LIMITS,
        convert=int,
        minimum=1,
    )
    max_metadata_value_length: int = flag(
        512,
        "longest `metadata` value, else 400 (default: 512, OpenAI's)",
        group=_LIMITS,
        convert=int,
        minimum=1,
    )
    max_model_length: int = flag(
        256,
        "longest `model` name in a request, else 400 (default: 256)",
        group=_LIMITS,
        convert=int,
        minimum=1,
    )
    max_user_length: int = flag(
        256,
        "longest `user` in a request, else 400 (default: 256)",
        group=_LIMITS,
        convert=int,
        minimum=1,
    )
    plan_workers: int = flag(
        2,
        "threads planning requests at once (schema checks, renders, grammars); large "
        "checks also use one worker process (default: 2)",
        group=_LIMITS,
        convert=int,
        minimum=1,
    )
    send_timeout: float = flag(
        30.0,
        "drop a streaming client that accepts no data for this many seconds and abort "
        "its generation (default: 30; 0: never)",
        group=_LIMITS,
        convert=float,
        minimum=0,
    )
    drain_grace: float = flag(
        30.0,
        "on SIGTERM: seconds open requests get to finish before they are ended with an "
        "error event and [DONE] (default: 30; keep it below the pod's "
        "terminationGracePeriodSeconds)",
        group=_LIMITS,
        convert=float,
        minimum=0,
    )

    # -- prompt
    date: str | None = flag(
        None,
        "`Current date:` in the system prompt, YYYY-MM-DD (default: today, pinned at startup)",
        group=_PROMPT,
        convert=_iso_date,
    )
    reasoning_effort: str = flag(
        "medium",
        "effort for requests that set none (default: medium)",
        group=_PROMPT,
        choices=("low", "medium", "high"),
    )
    default_max_tokens: int = flag(
        8192,
        "completion budget when a request sets none (default: 8192, or the rest of the "
        "context if smaller; 0: the rest of the context, as OpenAI and vLLM do)",
        group=_PROMPT,
        convert=int,
        minimum=0,
    )
    enforce_auto_tool_calls: bool = flag(
        True,
        'under tool_choice "auto", constrain calls by grammar to declared functions with '
        "schema-valid arguments (default: on; off still enforces `strict` tools and never "
        "returns an undeclared call)",
        group=_PROMPT,
        kind="switch",
    )

    # -- responses API
    response_store: str | None = flag(
        None,
        "where stored responses live: a file path or sqlite:///path (embedded SQLite), or "
        "postgresql://user@host/db for several proxy replicas (default: "
        "$XDG_DATA_HOME/harmony-proxy/responses.sqlite3, i.e. ~/.local/share/...)",
        group=_RESPONSES,
    )
    response_retention: int = flag(
        10_000,
        "keep at most this many stored responses, oldest dropped first (default: 10000; "
        "0: no limit)",
        group=_RESPONSES,
        convert=int,
        minimum=0,
    )
    response_max_age_days: float = flag(
        30.0,
        "drop stored responses older than this (default: 30, as OpenAI; 0: never)",
        group=_RESPONSES,
        convert=float,
        minimum=0,
    )
    reasoning_key: str | None = flag(
        None,
        "base64 32-byte key sealing reasoning for `include: [reasoning.encrypted_content]`; "
        "give every replica the same one (default: the key file)",
        group=_RESPONSES,
    )
    reasoning_key_file: str | None = flag(
        None,
        "file holding the reasoning key, created (mode 0600) if missing (default: "
        "reasoning.key beside a SQLite store, else in the data directory)",
        group=_RESPONSES,
    )

    # -- engine
    model: str | None = flag(
        None,
        "a gpt-oss checkpoint: local path or hub id (default: the bundled demo model)",
        group=_ENGINE,
    )
    served_model_name: str | None = flag(
        None,
        "model id clients use (default: the model path/id; the demo model's name without --model)",
        group=_ENGINE,
    )
    cache: str | None = flag(
        None,
        "directory the bundled demo model's checkpoint is built in on first use (default: "
        "~/.cache/harmony-proxy)",
        group=_ENGINE,
        metavar="DIR",
    )
    max_model_len: int | None = flag(
        None,
        "context length, prompt plus completion (default: the checkpoint's)",
        group=_ENGINE,
        convert=int,
        minimum=1,
    )
    dtype: str = flag(
        "auto",
        "weights dtype (default: auto: the checkpoint's; for the demo model on a CPU "
        "without bf16 instructions, float32, which is faster there)",
        group=_ENGINE,
    )
    tensor_parallel_size: int = flag(
        1, "GPUs to shard the model over (default: 1)", group=_ENGINE, convert=int, minimum=1
    )
    gpu_memory_utilization: float = flag(
        0.9,
        "fraction of GPU memory for weights and KV cache (default: 0.9)",
        group=_ENGINE,
        convert=float,
        minimum=0,
    )
    cpu_kvcache_space_gib: int = flag(
        1,
        "KV-cache size in GiB on CPU hosts (default: 1; 0: vLLM's default)",
        group=_ENGINE,
        convert=int,
        minimum=0,
    )
    enforce_eager: bool | None = flag(
        None, "disable CUDA graphs (default: eager on CPU only)", group=_ENGINE, kind="tristate"
    )
    pipeline_parallel_size: int | None = flag(
        None,
        "pipeline stages (GPUs) for one model (default: 1)",
        group=_ENGINE,
        convert=int,
        minimum=1,
    )
    data_parallel_size: int | None = flag(
        None,
        "engine replicas inside this process group (default: 1)",
        group=_ENGINE,
        convert=int,
        minimum=1,
    )
    max_num_seqs: int | None = flag(
        None,
        "sequences per engine step (default: vLLM's)",
        group=_ENGINE,
        convert=int,
        minimum=1,
    )
    max_num_batched_tokens: int | None = flag(
        None,
        "tokens per engine step (default: vLLM's)",
        group=_ENGINE,
        convert=int,
        minimum=1,
    )
    enable_prefix_caching: bool | None = flag(
        None,
        "reuse the KV cache of shared prompt prefixes (default: vLLM's, on)",
        group=_ENGINE,
        kind="tristate",
    )
    kv_cache_dtype: str | None = flag(
        None, "KV-cache dtype, e.g. fp8 (default: the model's)", group=_ENGINE
    )
    engine_arg: tuple[str, ...] = flag(
        (),
        "any other vLLM AsyncEngineArgs field (repeatable; VALUE parsed as JSON when it "
        "is JSON, e.g. block_size=32 or enable_expert_parallel=true)",
        group=_ENGINE,
        kind="list",
        metavar="KEY=VALUE",
    )

    # -- remote replicas
    backend_url: tuple[str, ...] = flag(
        (),
        "a vLLM server, e.g. http://10.0.0.5:8000 (repeatable; env comma-separated). "
        "Best started with --enable-scale-out (token-in/token-out endpoint); any vLLM >= "
        "0.10.2 works",
        group=_REPLICAS,
        kind="list",
    )
    health_check_interval: float = flag(
        5.0,
        "seconds between replica health checks (default: 5)",
        group=_REPLICAS,
        convert=float,
        minimum=0,
    )
    eject_after: int = flag(
        2,
        "failed health checks in a row before a replica is ejected (default: 2; a refused "
        "or reset connection ejects at once)",
        group=_REPLICAS,
        convert=int,
        minimum=1,
    )
    prefix_affinity: bool = flag(
        True,
        "route prompts sharing a prefix to the replica that has it cached (default: on)",
        group=_REPLICAS,
        kind="switch",
    )
    affinity_block_tokens: int = flag(
        DEFAULT_BLOCK_TOKENS,
        f"prefix block size in tokens for affinity hashing (default: {DEFAULT_BLOCK_TOKENS})",
        group=_REPLICAS,
        convert=int,
        minimum=1,
    )
    affinity_load_factor: float = flag(
        DEFAULT_LOAD_FACTOR,
        "a replica keeps its prefixes while its outstanding requests stay within this "
        f"multiple of the mean (default: {DEFAULT_LOAD_FACTOR})",
        group=_REPLICAS,
        convert=float,
        minimum=1,
    )

    # -- not flags: decided from the environment when the settings are built (from_sources)
    # $XDG_DATA_HOME/harmony-proxy: the default response store and reasoning key live here.
    # None (settings built directly): responses live in a temporary directory.
    data_dir: str | None = None

    def __post_init__(self) -> None:
        for name, spec in flags():
            value = getattr(self, name)
            if spec.minimum is not None and value is not None and value < spec.minimum:
                raise SettingsError(
                    f"{Flag.option(name)} / {Flag.variable(name)}: {value} is below "
                    f"the minimum, {spec.minimum:g}"
                )
        if any(not key.strip() for key in self.api_key):
            raise SettingsError(
                "--api-key / HARMONY_PROXY_API_KEY: an API key is empty or blank; that would "
                "accept any request. Give a real key, or none at all to serve without "
                "authentication"
            )
        self.engine_args()  # a malformed --engine-arg is a start-up error, not a load failure

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_sources(cls, given: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
        """Settings from the command line's values (`given`: field name -> value, only the
        flags that were given) over the environment's, over the defaults.

        Lists add the command line's entries after the environment's (as the flags always
        did: a flag adds a key or a replica to those the deployment configured). The date is
        pinned here (today, unless given), so every worker of one server renders the same one.
        """
        values: dict[str, Any] = {}
        for name, spec in flags():
            from_env = _from_environment(name, spec, environ)
            if name in given:
                value = given[name]
                if spec.kind == "list":
                    value = (*(() if from_env is dataclasses.MISSING else from_env), *value)
                values[name] = value
            elif from_env is not dataclasses.MISSING:
                values[name] = from_env
        values["date"] = values.get("date") or today()
        values.setdefault("cache", str(cache_dir(environ)))
        values["data_dir"] = str(data_dir(environ))
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes` (checked again)."""
        return dataclasses.replace(self, **changes)

    # -- what the parts of the server take ----------------------------------------------
    def proxy_config(self, served_model_name: str | None) -> ProxyConfig:
        """The app's configuration; `served_model_name` is decided at start-up (the demo
        model's name, or None to accept whatever the backend serves)."""
        store = self.response_store
        if store is None and self.data_dir is not None:
            store = str(Path(self.data_dir) / "responses.sqlite3")
        key_file = self.reasoning_key_file
        if key_file is None and store is not None and self.data_dir is not None:
            if store.startswith(("postgresql://", "postgres://")):
                # As the app would decide, but from the environment the settings were built in.
                key_file = str(Path(self.data_dir) / "reasoning.key")
        return ProxyConfig(
            served_model_names=(served_model_name,) if served_model_name else (),
            api_keys=self.api_key,
            cors_origins=self.cors_origin,
            conversation_date=self.date or today(),
            default_reasoning_effort=self.reasoning_effort,
            default_max_tokens=self.default_max_tokens or None,
            enforce_auto_tool_calls=self.enforce_auto_tool_calls,
            max_concurrent_requests=self.max_concurrent_requests or None,
            max_queued_requests=self.max_queued_requests,
            queue_timeout_seconds=self.queue_timeout,
            max_body_bytes=self.max_body_bytes or None,
            body_deadline_seconds=self.body_deadline or None,
            limits=Limits(
                max_messages=self.max_messages or None,
                max_tools=self.max_tools or None,
                max_tool_bytes=self.max_tool_bytes or None,
                max_schema_depth=self.max_schema_depth or None,
                max_grammar_bytes=self.max_grammar_bytes or None,
                max_stop_strings=self.max_stop_strings,
                max_stop_length=self.max_stop_length or None,
                max_past_tool_calls=self.max_past_tool_calls or None,
                max_n=self.max_n,
                max_metadata_pairs=self.max_metadata_pairs,
                max_metadata_key_length=self.max_metadata_key_length,
                max_metadata_value_length=self.max_metadata_value_length,
                max_model_length=self.max_model_length,
                max_user_length=self.max_user_length,
            ),
            plan_workers=self.plan_workers,
            send_timeout_seconds=self.send_timeout or None,
            response_store=store,
            response_retention_count=self.response_retention or None,
            response_retention_seconds=(self.response_max_age_days * 86400.0) or None,
            reasoning_key=self.reasoning_key,
            reasoning_key_file=key_file,
        )

    def engine_args(self) -> dict[str, Any]:
        """`--engine-arg` as AsyncEngineArgs keywords: `block_size=32` -> {"block_size": 32}."""
        return parse_engine_args(self.engine_arg)

    @property
    def debug(self) -> bool:
        """`--log-level debug`: show the engine libraries' own start-up and shutdown output."""
        return self.log_level == "debug"


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


@dataclass(frozen=True)
class ProxyConfig:
    """What the HTTP layer needs to know; the engine has its own options."""

    # Model ids accepted in requests; the first is the one listed by /v1/models. Empty: accept
    # whatever the backend serves (`backend.model_name`).
    served_model_names: tuple[str, ...] = ()
    # Bearer keys accepted on /v1/*. Empty: no authentication.
    api_keys: tuple[str, ...] = ()
    # Origins allowed by CORS. Empty: no CORS headers at all (browsers cannot call us cross-site).
    cors_origins: tuple[str, ...] = ()
    # `Current date:` in the system message. Pinned once (at startup by default) so prompts are
    # byte-stable: the engine's prefix cache hits and tests are reproducible.
    conversation_date: str = field(default_factory=today)
    knowledge_cutoff: str = "2024-06"
    model_identity: str = "You are ChatGPT, a large language model trained by OpenAI."
    # Used when a request has no `reasoning_effort` (the Harmony default).
    default_reasoning_effort: str = "medium"
    # Completion budget when the request sets none; None: the rest of the context window.
    default_max_tokens: int | None = None
    # Under tool_choice "auto" with tools, constrain calls by grammar: only declared functions,
    # arguments matching their schemas. Off: no grammar unless a tool is `strict` (calls are
    # then checked after generation, and undeclared or invalid ones become text).
    enforce_auto_tool_calls: bool = True
    # Mirror `reasoning` as `reasoning_content` (SGLang / llama.cpp / LiteLLM clients read it).
    mirror_reasoning_content: bool = True
    # Seconds between SSE keep-alive comments while the engine is silent (long prefill, slow
    # reasoning), so proxies and load balancers do not cut an idle stream. None: never.
    sse_ping_seconds: float | None = 15.0
    # Admission (proxy/core/admission.py): requests generating at once (None: no limit), requests
    # waiting for a slot beyond that, and how long one may wait; past either: 429.
    max_concurrent_requests: int | None = None
    max_queued_requests: int = 0
    queue_timeout_seconds: float = 30.0
    # Hostile-input limits (proxy/core/gate.py): raw body bytes (413) and messages per request.
    max_body_bytes: int | None = 8 * 1024 * 1024
    # A request's body must have arrived this many seconds after its headers (408 otherwise).
    body_deadline_seconds: float | None = 30.0
    # The cost gate's limits (proxy/core/gate.py): messages, tools, schemas, stop strings...
    limits: Limits = field(default_factory=Limits)
    # Threads planning requests (render, schema checks, grammar builds) at once.
    plan_workers: int = 2
    # A stream whose client has not accepted a write for this long is dropped (and its
    # generation aborted). None: wait for ever.
    send_timeout_seconds: float | None = 30.0
    # One JSON line per request on the `proxy.requests` logger.
    request_log: bool = True
    # Stored responses (/v1/responses `store`, `previous_response_id`): a path or sqlite:///
    # URL (embedded SQLite) or a postgresql:// URL (shared by several proxies). None: a SQLite
    # file in a temporary directory, gone when the process ends (the CLI sets a real path).
    response_store: str | None = None
    # Retention: at most this many stored responses, none older than this (None: no limit).
    response_retention_count: int | None = 10_000
    response_retention_seconds: float | None = 30 * 86400.0
    # The key sealing reasoning for stateless replay (`reasoning.encrypted_content`): base64 of
    # 32 bytes, the same on every replica. None: read (or create) `reasoning_key_file`; with
    # that None too, a key file beside the store.
    reasoning_key: str | None = None
    reasoning_key_file: str | None = None

    def service_settings(self) -> ServiceSettings:
        """What the generation service decides by."""
        return ServiceSettings(
            served_model_names=self.served_model_names,
            system=SystemDefaults(
                model_identity=self.model_identity,
                knowledge_cutoff=self.knowledge_cutoff,
                conversation_date=self.conversation_date,
                reasoning_effort=self.default_reasoning_effort,
            ),
            limits=self.limits,
            enforce_auto_tool_calls=self.enforce_auto_tool_calls,
            default_max_tokens=self.default_max_tokens,
            max_concurrent_requests=self.max_concurrent_requests,
            max_queued_requests=self.max_queued_requests,
            queue_timeout_seconds=self.queue_timeout_seconds,
            plan_workers=self.plan_workers,
            request_log=self.request_log,
        )
