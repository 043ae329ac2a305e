# `make demo` runs the main job on the synthetic CASME II; `make test` lints (ruff) and runs every test (what CI
# runs); `make test-fast` skips the ones marked slow (learning, engine runs, tfds builds).
# Both create .venv from the pinned requirements on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= workdirs/demo

.PHONY: demo test test-fast bench clean

$(VENV)/.installed: requirements.txt requirements-test.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-test.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# The LOSO run, its report (PNG + markdown), then the trained model on a synthetic video.
demo: $(VENV)/.installed
	$(PY) main.py --config=configs/resnet_loso.py:synthetic --workdir=$(WORKDIR)
	$(PY) -m microexp.report $(WORKDIR)
	$(PY) -m microexp.synthetic.video --synthetic=$(WORKDIR)/example_surprise.mp4 --emotion=surprise
	$(PY) -m microexp.predict --model=$(WORKDIR) --input=$(WORKDIR)/example_surprise.mp4

# Two worker processes, a test file per worker at a time (module fixtures are built once): most of
# the suite is XLA compiling, one core per program. `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 2
# XLA's compilation cache of the test runs, kept between them (about half the suite's time is
# compiling; a warm cache gives the same executables, bit for bit). `TEST_XLA_CACHE=` (empty): a
# fresh folder per run, removed after it; `none`: no cache.
TEST_XLA_CACHE ?= $(HOME)/.cache/microexp/xla-tests
PYTEST := MICROEXP_COMPILATION_CACHE=$(TEST_XLA_CACHE) $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PYTEST) tests

test-fast: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PYTEST) -m "not slow and not benchmark" tests

# PROTOCOL_ARGS: empty = the whole STSTNet MEGC2019 protocol (68 folds x 150 epochs, sized for a
# GPU); on a CPU e.g. PROTOCOL_ARGS="--folds=8 --epochs=20" (docs/training.md, Benchmarks).
PROTOCOL_ARGS ?=
bench: $(VENV)/.installed
	$(PY) benchmarks/flow_speed.py
	$(PY) benchmarks/fold_parallel.py
	$(PY) benchmarks/protocol.py $(PROTOCOL_ARGS)

clean:
	rm -rf $(VENV) workdirs
