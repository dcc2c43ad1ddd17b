# The two set-up commands of the README: `make demo` and `make test`.
.PHONY: setup demo test lint bench executor-image

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

# dist/executor-image.tar and dist/executor-image-debug.tar (see scripts/executor_image.py)
executor-image: setup
	.venv/bin/python scripts/executor_image.py
