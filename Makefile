# Two set-up commands (README): `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast slurm-up slurm-down lock clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch/torchvision first, pinned, so pip never picks a multi-GB build from the network
	$(BIN)/pip install --quiet -c constraints.txt torch torchvision
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/bench sweep slurm/specs/demo.toml --executor local --out results/demo
	$(BIN)/bench report results/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not slurm"

slurm-up:
	bash slurm/local-cluster.sh up

slurm-down:
	bash slurm/local-cluster.sh down

lock: $(STAMP)
	( echo '# Exact versions CI installs (pip install -c constraints.txt). Regenerate with `make lock`.'; \
	  $(BIN)/pip freeze --exclude-editable ) > constraints.txt

clean:
	rm -rf $(VENV) build *.egg-info
