# lrtune — set-up-and-go targets. Each creates .venv (Python 3.11) on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.PHONY: test demo bench lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch==2.13.0 is pinned explicitly: it is the CPU build that installs from the local wheel cache.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0" -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) examples/compare_optimizers.py

bench: $(STAMP)
	$(PY) benchmarks/optimizer_step.py
	$(PY) benchmarks/schedule_step.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
