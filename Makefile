# The two set-up commands of the README: `make demo` and `make test`.
.PHONY: setup demo test lint bench

setup:
	./scripts/setup-system
	./scripts/setup-venv

demo: setup
	.venv/bin/python scripts/demo.py

test: setup
	.venv/bin/pytest -q -p no:cacheprovider

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports

bench: setup
	.venv/bin/python -m benchmarks.snapshot --quick
