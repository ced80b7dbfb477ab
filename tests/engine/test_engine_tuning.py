"""The engine-tuning flags: CLI -> EngineOptions -> vLLM's AsyncEngineArgs (no engine loaded)."""

from __future__ import annotations

import dataclasses

import pytest

from proxy.backends.vllm_options import EngineOptions
from proxy.server.cli import parse_settings
from proxy.server.cli_scale import engine_tuning, parse_engine_args
from proxy.server.settings import SettingsError

FLAGS = [
    "serve",
    "--pipeline-parallel-size",
    "2",
    "--data-parallel-size",
    "2",
    "--max-num-seqs",
    "64",
    "--max-num-batched-tokens",
    "8192",
    "--enable-prefix-caching",
    "--kv-cache-dtype",
    "fp8",
    "--engine-arg",
    "block_size=32",
    "--engine-arg",
    "enable-expert-parallel=true",
    "--engine-arg",
    "quantization=mxfp4",
]


def options_from(argv: list[str], environ: dict[str, str] | None = None) -> EngineOptions:
    settings = parse_settings(argv, environ=environ or {})
    return EngineOptions(model="m", max_model_len=4096, **engine_tuning(settings))


def test_flags_reach_the_engine_arguments():
    kwargs = options_from(FLAGS).engine_kwargs(on_cpu=False)
    assert kwargs["pipeline_parallel_size"] == 2
    assert kwargs["data_parallel_size"] == 2
    assert kwargs["max_num_seqs"] == 64
    assert kwargs["max_num_batched_tokens"] == 8192
    assert kwargs["enable_prefix_caching"] is True
    assert kwargs["kv_cache_dtype"] == "fp8"
    assert (kwargs["block_size"], kwargs["enable_expert_parallel"]) == (32, True)
    assert kwargs["quantization"] == "mxfp4"


def test_unset_flags_leave_vllm_defaults():
    kwargs = options_from(["serve"]).engine_kwargs(on_cpu=False)
    for key in ("pipeline_parallel_size", "data_parallel_size", "max_num_seqs", "kv_cache_dtype"):
        assert key not in kwargs
    assert "enable_prefix_caching" not in kwargs


def test_batched_tokens_stay_at_least_the_context_without_chunked_prefill():
    small = options_from(["serve", "--max-num-batched-tokens", "512"])
    assert small.engine_kwargs(on_cpu=True)["max_num_batched_tokens"] == 4096
    large = options_from(["serve", "--max-num-batched-tokens", "16384"])
    assert large.engine_kwargs(on_cpu=True)["max_num_batched_tokens"] == 16384


def test_environment_variables_set_the_flags():
    environ = {
        "HARMONY_PROXY_MAX_NUM_SEQS": "12",
        "HARMONY_PROXY_ENGINE_ARG": "max_logprobs=5,block_size=32",
    }
    kwargs = options_from(["serve"], environ).engine_kwargs(on_cpu=False)
    assert (kwargs["max_num_seqs"], kwargs["max_logprobs"], kwargs["block_size"]) == (12, 5, 32)


def test_malformed_engine_args_are_refused():
    with pytest.raises(SettingsError, match="KEY=VALUE"):
        parse_engine_args(["no-equals-sign"])


def test_every_engine_argument_is_a_vllm_engine_argument():
    vllm = pytest.importorskip("vllm")
    fields = {f.name for f in dataclasses.fields(vllm.AsyncEngineArgs)}
    kwargs = options_from(FLAGS).engine_kwargs(on_cpu=False)
    assert set(kwargs) <= fields, set(kwargs) - fields


@pytest.mark.parametrize(
    ("has_bf16", "on_cpu", "flag", "dtype", "expected"),
    [
        (False, True, True, "auto", "float32"),  # the demo on an AVX2-only CPU
        (True, True, True, "auto", "auto"),  # bf16 instructions: vLLM's choice
        (False, False, True, "auto", "auto"),  # GPU hosts: untouched
        (False, True, False, "auto", "auto"),  # a real checkpoint: untouched
        (False, True, True, "bfloat16", "bfloat16"),  # an explicit --dtype wins
    ],
)
def test_the_demo_runs_float32_on_cpus_without_bf16(
    monkeypatch, has_bf16, on_cpu, flag, dtype, expected
):
    monkeypatch.setattr("proxy.backends.vllm_options.cpu_has_bf16", lambda: has_bf16)
    options = EngineOptions(model="m", dtype=dtype, float32_without_cpu_bf16=flag)
    assert options.engine_kwargs(on_cpu)["dtype"] == expected
