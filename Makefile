# Everything a fresh machine needs, in two commands:
#   make demo PROMPT="..."   installs ONNX Runtime, builds, runs `iat2i generate`
#   make test                installs ONNX Runtime, validates deploy/k8s/, runs fmt, clippy and the whole test suite
#   make validate-k8s        the Kubernetes manifests against the API schemas (kubernetes-validate, strict)
#   make lint-docker         the Dockerfile through hadolint, and every path it copies exists
#   make bench               the selection benchmark (generates the full-size test model once)
#   make bench-memory        the reference-memory benchmark (50 prompts, with vs without memory)
#   make bench-serve         iat2i serve under 64 clients for 60 s against fixed-latency stand-ins
SHELL := /bin/bash
ORT_LIB := $(CURDIR)/.tools/onnxruntime/onnxruntime/capi/libonnxruntime.so.1.31.1
PROMPT ?= A photo of the Hogwarts Legacy protagonist riding a Graphorn at dusk
DEMO_ARGS ?=

.PHONY: demo test setup validate-k8s lint-docker fmt clippy bench bench-select bench-batch bench-memory bench-serve fuzz

setup: $(ORT_LIB)

$(ORT_LIB):
	bash scripts/setup-ort.sh >/dev/null

demo: setup
	ORT_DYLIB_PATH=$(ORT_LIB) cargo run --release --bin iat2i -- generate $(DEMO_ARGS) "$(PROMPT)"

fmt:
	cargo fmt --all -- --check

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

# deploy/k8s/*.yaml against the Kubernetes JSON schemas, strict (pinned kubernetes-validate
# in .tools/venv-k8s; PyPI on first run only). The pod failure policy's behaviour per exit
# code is tested by tests/deploy_failure_policy.rs.
validate-k8s:
	bash scripts/validate-k8s.sh

# The Dockerfile through hadolint (pinned, in .tools/venv-docker; PyPI on first run only),
# and every local path it copies exists. CI cannot pull base images, so it does not build.
lint-docker:
	bash scripts/lint-docker.sh

# Tests that need a Qdrant server start ../shared/bin/qdrant themselves (free ports, temporary storage).
test: setup validate-k8s lint-docker fmt clippy
	ORT_DYLIB_PATH=$(ORT_LIB) cargo test --workspace

FULL_MODEL := $(CURDIR)/fixtures/models/full/vision/model.onnx
PYVENV := $(CURDIR)/.tools/venv

$(FULL_MODEL):
	python3 -m venv $(PYVENV)
	$(PYVENV)/bin/pip install --quiet --disable-pip-version-check numpy onnx
	$(PYVENV)/bin/python fixtures/models/make_clip_onnx.py full

# Selection benchmark (release build, full-size random-weight CLIP, generated on first run).
bench: setup $(FULL_MODEL)
	ORT_DYLIB_PATH=$(ORT_LIB) cargo bench -p iat2i-selectors --bench select

# Selection against its reference points (issue 11), in one run: ONNX Runtime alone on the
# same images, the select process's stages, time and peak memory, and the concurrent Python
# script of ../shared/bench/peer/, with every ratio against its target.
BENCH_VENV := $(CURDIR)/.tools/venv-bench
$(BENCH_VENV)/bin/python:
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check numpy pillow requests onnx \
		onnxruntime==1.31.1 tokenizers qdrant-client
bench-select: setup $(FULL_MODEL) $(BENCH_VENV)/bin/python
	cargo build --release --bin iat2i
	ORT_DYLIB_PATH=$(ORT_LIB) $(BENCH_VENV)/bin/python scripts/bench_select_peer.py \
		--python $(BENCH_VENV)/bin/python $(BENCH_SELECT_ARGS)

# Fuzz every parser of outside input (engine answers, LMM JSON, judge and gate replies,
# image sniffing and decoding, licences; the image generators' answers: Gemini, chat
# images, ComfyUI's /prompt, /history, websocket frames and /object_info; evaluation
# prompt sets: WISE, WorldGenBench, manifests; batch manifests: JSONL, CSV, text) for
# FUZZ_RUNS inputs each, on the stable toolchain (a harness of our own: fuzz/; the
# targets are listed in fuzz/src/targets.rs, FUZZ_TARGETS="gemini comfyui_ws" picks some).
# Runs through the test harness so that it reuses the build of `make test`; crashers are
# minimised into fuzz/crashers/<target>/.
# `make test` keeps only the short round (fuzz/src/lib.rs: every_target_survives_a_short_run).
FUZZ_RUNS ?= 1000000
FUZZ_TARGETS ?=
fuzz: setup
	IAT2I_FUZZ_RUNS=$(FUZZ_RUNS) IAT2I_FUZZ_TARGETS="$(FUZZ_TARGETS)" ORT_DYLIB_PATH=$(ORT_LIB) \
		cargo test --workspace -- --ignored --nocapture --exact tests::fuzz_full_run --test-threads 1

# Batch benchmark (release build): 50 and 200 jobs against local mocks (chat 300 ms,
# image 2 s) at concurrency 8; prints throughput against the ideal, overhead and peak memory.
bench-batch:
	cargo bench -p iat2i --bench batch

# Reference-memory benchmark: 50 prompts, 20 recurring entities, 100 candidates a prompt
# from a local latency image server; with vs without the memory (tiny CLIP test model;
# BENCH_MODEL=full for the full-size one, BENCH_SHARED=0 for disjoint candidate sets).
bench-memory: setup
	ORT_DYLIB_PATH=$(ORT_LIB) cargo bench -p iat2i-selectors --bench memory

# The service under load (release build): 64 clients for 60 s against stand-ins with fixed
# latencies; throughput, latency added over the stand-ins', RSS, errors.
bench-serve:
	cargo bench --bench serve
