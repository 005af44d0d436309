# Every target goes through dev.py, which creates .venv and installs the lock file first.
PYTHON ?= python3

.PHONY: serve test lint bench

serve:  ## the API on the embedded PostgreSQL (ARGS="--port 9000" to pass options)
	$(PYTHON) dev.py serve $(ARGS)

test:  ## what CI runs: format, lint, types, import rules, then the whole test suite
	$(PYTHON) dev.py test $(ARGS)

lint:  ## the static checks only
	$(PYTHON) dev.py lint

bench:  ## not there yet
	@echo "The benchmark is issue 7 (it will live in bench/); nothing to run yet." >&2
	@exit 1
