# Every target here is what CI runs; see .ci/run.
PY := .venv/bin/python

.PHONY: setup toolchains demo test lint typecheck unit live matrix regress bench stress clean

setup:            ## virtualenv, pinned Delve, Go 1.24 for the refusal test (idempotent)
	scripts/setup --dev >/dev/null

toolchains:       ## what CI tests: Go 1.22, 1.25, 1.27 and the Delves that accept them
	scripts/toolchains --ci

demo:             ## the README's first command: set up and watch the demo fixture
	@scripts/setup >/dev/null
	.venv/bin/dlvsnap watch fixtures/deletes --map m

lint: setup
	.venv/bin/ruff check dlvsnap tests scripts/bench.py scripts/toolchains
	.venv/bin/ruff format --check dlvsnap tests scripts/bench.py

typecheck: setup
	.venv/bin/mypy

unit: setup
	$(PY) -m pytest tests/unit -q

live: setup toolchains
	$(PY) -m pytest tests/live -q -m live

test: setup toolchains lint typecheck  ## the README's second command: the whole suite
	$(PY) -m pytest -q -ra

matrix: setup     ## every Go release 1.19-1.27 (installs them): live tests and regress
	scripts/toolchains
	DLVSNAP_MATRIX=full $(PY) -m pytest tests/live -q -ra
	.venv/bin/dlvsnap regress --all

stress: setup     ## interrupt watch --attach/--connect 50 times per signal (issue 10's race)
	DLVSNAP_STRESS=$${DLVSNAP_STRESS:-50} $(PY) -m pytest tests/live/test_leaving.py -q -k interrupting

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache

bench: setup toolchains  ## scripts/bench.py: dlvsnap next to same-run baselines (issue 4)
	$(PY) scripts/bench.py --json bench.json
