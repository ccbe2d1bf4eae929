# Every target here is what CI runs; see .ci/run.
PY := .venv/bin/python

.PHONY: setup demo test lint typecheck unit live clean

setup:            ## virtualenv, pinned Delve, test toolchains (idempotent)
	scripts/setup --dev >/dev/null

demo:             ## the README's first command: set up and watch the demo fixture
	@scripts/setup >/dev/null
	.venv/bin/dlvsnap watch fixtures/deletes --map m

lint: setup
	.venv/bin/ruff check dlvsnap tests
	.venv/bin/ruff format --check dlvsnap tests

typecheck: setup
	.venv/bin/mypy

unit: setup
	$(PY) -m pytest tests/unit -q

live: setup
	$(PY) -m pytest tests/live -q -m live

test: setup lint typecheck  ## the README's second command: the whole suite
	$(PY) -m pytest -q -ra

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache
