#!/usr/bin/env bash
# Sourced by the scripts that run a pinned Python tool: `pinned_venv NAME VENV REQS`
# (re)creates the virtual environment VENV with exactly the packages of REQS when REQS
# changed since it was made (PyPI on first run only, then nothing).
pinned_venv() {
  local name=$1 venv=$2 reqs=$3
  if cmp -s "$reqs" "$venv/requirements.txt"; then
    return 0
  fi
  local py
  py=$(command -v python3 || command -v python || true)
  if [ -z "$py" ]; then
    echo "$name: python3 (with venv and pip) is needed to install $(basename "$reqs" .requirements.txt)'s tools" >&2
    exit 1
  fi
  "$py" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$reqs" >&2
  cp "$reqs" "$venv/requirements.txt"
}
