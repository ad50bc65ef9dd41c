# dialab: `make demo` and `make test` set themselves up (idempotently) and run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export DIALAB_DATA ?= $(abspath ../shared/data)
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export WANDB_MODE ?= offline

.PHONY: setup test demo clean

setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch first (a local CPU wheel here, the platform's build elsewhere), then everything else
# under a constraint that pins it, so the resolver never swaps in a CUDA build.
$(STAMP): $(PY) pyproject.toml constraints.txt
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

# validate the demo bot, train DIET on it (Rasa defaults) and print the report summary, then
# train the dialogue policies (rules + memoization + TED) and print the story report; finally
# export both, serve them with the demo bot's action server and print a scripted conversation
demo: $(STAMP)
	$(VENV)/bin/dialab data validate data/demo_bot
	$(PY) -m experiments.train experiment=diet_demo
	$(PY) -m experiments.train experiment=ted_demo
	$(PY) -m experiments.demo_conversation

clean:
	rm -rf $(VENV) outputs .pytest_cache
