# Every target here is what CI runs; see .ci/run.
PY := .venv/bin/python
# The tests that need nothing but Python and the package: no dlv, no Go toolchain, no
# chromium (tests that drive one carry the `live` or `chromium` marker, see pyproject.toml).
FAST := not live and not chromium

.PHONY: venv setup toolchains demo check test lint typecheck unit live matrix regress bench stress clean

venv:             ## virtualenv with dlvsnap and its test, lint and type tools; nothing else
	scripts/setup --venv

setup:            ## venv, pinned Delve, Go 1.24 for the refusal test, chromium (idempotent)
	scripts/setup --dev >/dev/null

toolchains:       ## what CI tests: Go 1.22, 1.25, 1.27 and the Delves that accept them
	scripts/toolchains --ci

demo:             ## the README's first command: set up and watch the demo fixture
	@scripts/setup >/dev/null
	.venv/bin/dlvsnap watch fixtures/deletes --map m

check: lint typecheck unit  ## lint, types and the fast tests: no Delve, Go or chromium needed

lint: venv
	.venv/bin/ruff check dlvsnap tests scripts/bench.py scripts/toolchains
	.venv/bin/ruff format --check dlvsnap tests scripts/bench.py
	@# the report's JavaScript is a file of its own: its syntax is checked where node is
	@if command -v node >/dev/null; then node --check dlvsnap/render/report/report.js; fi

typecheck: venv
	.venv/bin/mypy

# On every core (most of their time is `python -m dlvsnap` subprocesses); the fuzz tests
# run a fixed tenth of their examples here, `make test` runs them all.
unit: venv        ## the fast tests (every test without the live or chromium marker)
	DLVSNAP_FUZZ_EXAMPLES=$${DLVSNAP_FUZZ_EXAMPLES:-100} $(PY) -m pytest -q -n auto -m "$(FAST)"

live: setup toolchains  ## the tests that drive dlv, Go toolchains or chromium
	$(PY) -m pytest -q -m "live or chromium"

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
