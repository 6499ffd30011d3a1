# Moments: `make run` starts everything and shows decisions live; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test deps test-deps lint bench clean

$(BIN)/moments: pyproject.toml constraints.txt
	bash deploy/local/python-venv.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==26.3
# as an environment variable, the constraints also pin the build backend (setuptools)
# that pip installs apart to build Moments itself
	PIP_CONSTRAINT=constraints.txt $(BIN)/pip install -q -e '.[dev]'
	touch $@

# System pieces: redis-server, a JVM and Maven (OS packages), Kafka broker jars (Maven Central).
deps: $(BIN)/moments
	bash deploy/local/install-deps.sh $(BIN)/python

# ...and what only the tests need: Chromium (browser test) and Prometheus/promtool.
test-deps: $(BIN)/moments
	bash deploy/local/install-deps.sh $(BIN)/python --tests

run: deps
	$(BIN)/moments demo

lint: $(BIN)/moments
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Four test processes (MOMENTS_TEST_PROCESSES): each starts its own Kafka and Redis, and
# most tests wait on them, so four share two cores well (908 s, where three took 1,057 s).
# The 20 slowest tests are listed at the end, to keep the run short.
MOMENTS_TEST_PROCESSES ?= 4
test: test-deps lint
	$(BIN)/pytest -n $(MOMENTS_TEST_PROCESSES) --dist worksteal --durations=20 \
		--doctest-modules schemas feature_store agents streams tests

bench: deps
	$(BIN)/moments bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
