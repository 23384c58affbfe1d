# tadkit: `make demo` and `make test` work from a fresh clone with only Python 3.11.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip --no-cache-dir
STAMP  := $(VENV)/.installed

.PHONY: install test demo bench gpu-check clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; run 'make PYTHON=python3' with Python >= 3.10" >&2; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

demo: $(STAMP)
	$(VENV)/bin/tadkit demo --out demo_output

# the quick benchmarks (a few minutes); each writes benchmarks/results/NAME.json, then docs/benchmarks.md
bench: $(STAMP)
	$(PY) benchmarks/eval_speed.py
	$(PY) benchmarks/nms_speed.py
	$(PY) benchmarks/tags_memory.py
	$(VENV)/bin/tadkit weights i3d
	$(PY) benchmarks/extract_speed.py
	$(PY) benchmarks/render.py

# on a machine with a CUDA GPU: every device path (autocast training of the six detectors, predict,
# torchrun, extract, detect, end-to-end) in a few minutes; a table, and benchmarks/results/gpu_check.json
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py --device cuda
	$(PY) benchmarks/render.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache
