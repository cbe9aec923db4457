# Two entry points (see README): `make demo` runs the main job on the built-in synthetic data,
# `make test` runs the test suite. Both create .venv and install the project on first use.
PYTHON ?= python3
VENV ?= .venv
# torch/torchvision are installed first, pinned to the builds this workplace has on disk;
# override e.g. `make TORCH_SPEC="torch torchvision" test` elsewhere.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean-venv

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet $(TORCH_SPEC)
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/python -m experiments.demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV)
