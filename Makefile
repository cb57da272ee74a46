# Set-up on first use, then the job. `make run` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
INSTALLED = $(VENV)/.installed

.PHONY: run test bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(INSTALLED)

run: $(INSTALLED)
	$(BIN)/zoolite run $(ARGS)

test: $(INSTALLED)
	bash scripts/install-browser.sh
	$(BIN)/python -m pytest -q -n auto --dist worksteal $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
