# Two commands on a fresh machine: `make run` and `make test` (and `make demo`).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run demo test soak fuzz venv .venv

run: $(STAMP)
	-bash scripts/ensure-fonts.sh  # the review's PDF needs a Chinese font; the rest runs without
	$(PY) -m server run $(RUN_ARGS)

demo: $(STAMP)
	$(PY) -m synthetic.demo

# pytest's exit code 5 (no tests collected) is non-zero, so it fails the make too. Two worker
# processes (TEST_WORKERS), each taking whole test files: most tests wait on the network, not the CPU.
TEST_WORKERS ?= 2
test: $(STAMP)
	bash scripts/ensure-redis.sh
	bash scripts/ensure-fonts.sh
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-gstreamer.sh
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The long versions of the tests marked `soak` (a 120 s encoder run, a 5-minute satellite link,
# 1,000 churn cycles); `make test` runs each of them shortened.
soak: $(STAMP)
	bash scripts/ensure-redis.sh
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-gstreamer.sh
	SOAK=1 $(PY) -m pytest -m soak $(PYTEST_ARGS)

# The fuzz tests (wire decoder, SDP offers over /ws and WHIP, RTP/RTCP datagrams) with many more
# inputs, drawn at random: FUZZ_SCALE=100 by default (`make test` runs them at 1, under a minute).
FUZZ_SCALE ?= 100
fuzz: $(STAMP)
	FUZZ_SCALE=$(FUZZ_SCALE) $(PY) -m pytest tests/fuzz --timeout=0 $(PYTEST_ARGS)

venv .venv: $(STAMP)

# Re-installs whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@
