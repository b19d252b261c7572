# Two commands on a fresh machine: `make course` runs the whole course, `make test` runs every test.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# Where pip is capped at the releases lying on this machine's disk, take exactly those
# (a multi-GB download otherwise); elsewhere any recent release will do.
TORCH_PINS := $(shell grep -qs 'torch<=2.14.1' /etc/xdg/pip/constraints.txt && echo 'torch==2.14.1 torchvision==0.29.1' || echo 'torch>=2.2 torchvision>=0.17')
export MPLBACKEND ?= Agg

.PHONY: install course test test-unit test-notebooks lab bench site clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH_PINS)
	$(PIP) install --quiet -e '.[dev]'
	touch $(STAMP)

course: install
	$(PY) -m course run

test: install
	$(MAKE) --no-print-directory test-unit test-notebooks

# The two halves of `make test`, without the install step (for a checkout that shares an installed venv).
test-unit:
	$(PY) -m pytest $(or $(PYTEST_ARGS),tests)

test-notebooks:
	# Every notebook executes (nbval), shrunk by the smoke switch, with a cache of its own: as committed
	# (exercise stubs, so every later cell runs on the course's references) and solved (the solutions in).
	cache=$$(mktemp -d) && solved=$$(mktemp -d) && trap 'rm -rf "$$cache" "$$solved"' EXIT && \
	  $(PY) -m course solutions --out "$$solved" && \
	  COURSE_SMOKE=1 COURSE_OFFLINE=1 COURSE_CACHE=$$cache \
	  $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks/ "$$solved"

lab: install
	$(VENV)/bin/jupyter lab notebooks/

bench: install
	$(PY) -m course bench

# The course as a website in site/: from RUN_DIR=<a run folder> if given, else from a fresh run of the whole
# course on the offline default into runs/site-run. Nothing is executed by the site build itself.
SITE_RUN := runs/site-run
site: install
	$(if $(RUN_DIR),,COURSE_OFFLINE=1 $(PY) -m course run --out $(SITE_RUN) --force)
	$(PY) -m course site $(or $(RUN_DIR),$(SITE_RUN)) --out site

clean:
	rm -rf .cache runs site .pytest_cache
