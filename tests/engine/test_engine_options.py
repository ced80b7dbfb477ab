"""EngineOptions → vLLM engine arguments (no engine needed)."""

from __future__ import annotations

from proxy.backends.vllm_options import EngineOptions


def test_cpu_hosts_run_eager_without_chunked_prefill():
    kwargs = EngineOptions(model="m", max_model_len=4096).engine_kwargs(on_cpu=True)
    assert kwargs["enforce_eager"] is True
    assert kwargs["enable_chunked_prefill"] is False
    assert kwargs["max_num_batched_tokens"] == 4096
    assert "gpu_memory_utilization" not in kwargs


def test_gpu_hosts_get_memory_utilization_and_vllm_defaults():
    kwargs = EngineOptions(
        model="m", gpu_memory_utilization=0.5, tensor_parallel_size=2
    ).engine_kwargs(on_cpu=False)
    assert kwargs["gpu_memory_utilization"] == 0.5
    assert kwargs["tensor_parallel_size"] == 2
    assert kwargs["enforce_eager"] is False
    assert "enable_chunked_prefill" not in kwargs and "max_model_len" not in kwargs


def test_the_request_alone_decides_stop_tokens():
    assert EngineOptions(model="m").engine_kwargs(on_cpu=True)["generation_config"] == "vllm"


def test_served_name_defaults_to_the_model():
    assert EngineOptions(model="m").engine_kwargs(on_cpu=True)["served_model_name"] == "m"
    named = EngineOptions(model="m", served_model_name="demo").engine_kwargs(on_cpu=True)
    assert named["served_model_name"] == "demo"


def test_tokenizer_loads_only_when_the_checkpoint_has_one(tmp_path):
    assert EngineOptions(model=str(tmp_path)).engine_kwargs(True)["skip_tokenizer_init"] is True
    (tmp_path / "tokenizer.json").write_text("{}")
    assert EngineOptions(model=str(tmp_path)).engine_kwargs(True)["skip_tokenizer_init"] is False
    forced = EngineOptions(model=str(tmp_path), skip_tokenizer_init=True)
    assert forced.engine_kwargs(True)["skip_tokenizer_init"] is True


def test_extra_engine_args_pass_through_and_win():
    options = EngineOptions(model="m", extra_engine_args={"max_num_seqs": 7, "seed": 9})
    kwargs = options.engine_kwargs(on_cpu=True)
    assert (kwargs["max_num_seqs"], kwargs["seed"]) == (7, 9)
