# Every target goes through dev.py, which creates .venv and installs the lock file first.
PYTHON ?= python3

.PHONY: serve test lint bench

serve:  ## the API on the embedded PostgreSQL (ARGS="--port 9000" to pass options)
	$(PYTHON) dev.py serve $(ARGS)

test:  ## what CI runs: format, lint, types, import rules, then the whole test suite
	$(PYTHON) dev.py test $(ARGS)

lint:  ## the static checks only
	$(PYTHON) dev.py lint

bench:  ## the service against its raw-asyncpg ceiling (ARGS="--workers 2 --duration 10")
	$(PYTHON) dev.py install
	.venv/bin/python -m bench $(ARGS)
