# The two commands a newcomer needs:  make run   and   make test
# Both install what they need first (scripts/setup.sh is idempotent).
.PHONY: setup setup-test run test test-fast lint lock clean-reports

VENV := .venv/bin
ARGS ?=

setup:
	@scripts/setup.sh

## setup-test: also what only the tests need (Chromium, PostgreSQL, gpg)
setup-test:
	@scripts/setup.sh --test

## run: the local matrix run on the defaults in matrix.yml (images are built on first use)
run: setup
	$(VENV)/pipeline run $(ARGS)

## test: lint, unit tests, then integration tests with real Docker/QEMU on one kernel
test: setup-test
	$(VENV)/ruff check pipeline tests
	$(VENV)/pytest -q -ra $(ARGS)

## test-fast: only the pure unit tests (seconds)
test-fast: setup
	$(VENV)/pytest -q tests/unit $(ARGS)

lint: setup
	$(VENV)/ruff check pipeline tests

lock: setup
	$(VENV)/pipeline lock $(ARGS)

## bench: the benchmark suite (minutes; not part of `make test`): bench/README.md
.PHONY: bench
bench: setup
	$(VENV)/python bench/run.py $(ARGS)
