# Set-up is part of every target: a fresh machine needs only `make run` or `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch build to install; on a GPU machine pick the one matching its CUDA, e.g. TORCH=torch torchvision
TORCH ?= torch==2.14.1 torchvision==0.29.1
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev,gpu,openvino,timm,ray]'
	touch $@

run: setup
	$(VENV)/bin/rtbench run $(ARGS)

# two test processes side by side (pytest-xdist, a file each), then the tests that time real work, alone (not first:
# there they met the work a fresh machine's installs leave behind); exit code 5: PYTEST_ARGS chose no test of a part
test: setup
	$(PY) -m pytest -q -rs -n 2 --dist loadfile -m "not serial" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(PY) -m pytest -q -rs -m serial $(PYTEST_ARGS) || [ $$? -eq 5 ]

clean:
	rm -rf $(VENV) rtbench-results .pytest_cache
