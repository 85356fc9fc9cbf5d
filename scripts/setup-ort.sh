#!/usr/bin/env bash
# Installs ONNX Runtime (the shared library fastembed loads at run time) from the PyPI
# wheel onnxruntime==1.31.1 into .tools/onnxruntime, and prints the ORT_DYLIB_PATH to use.
# Idempotent: does nothing when the library is already there.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest="$here/.tools/onnxruntime"
lib="$dest/onnxruntime/capi/libonnxruntime.so.1.31.1"
if [ ! -f "$lib" ]; then
  py=$(command -v python3 || command -v python || true)
  if [ -z "$py" ]; then
    echo "setup-ort: python3 with pip is needed to install the onnxruntime wheel" >&2
    exit 1
  fi
  "$py" -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$dest" "onnxruntime==1.31.1" >&2
fi
if [ ! -f "$lib" ]; then
  echo "setup-ort: $lib is missing after installing onnxruntime==1.31.1" >&2
  exit 1
fi
echo "$lib"
