#!/usr/bin/env bash
# Lints the Dockerfile with hadolint (pinned in scripts/lint-docker.requirements.txt,
# installed into .tools/venv-docker on first run; PyPI once, then nothing), and checks
# that every local path it copies exists: CI cannot pull base images to build it, so
# this is what keeps it honest between real builds.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.tools/venv-docker"
reqs="$here/scripts/lint-docker.requirements.txt"
# shellcheck source=scripts/pinned-venv.sh
source "$here/scripts/pinned-venv.sh"
pinned_venv lint-docker "$venv" "$reqs"
"$venv/bin/hadolint" --failure-threshold info "$here/Dockerfile"
# Every `COPY <local paths> <dest>` (not --from=) names something in the repository.
missing=0
while read -r -a words; do
  [ "${words[0]:-}" = "COPY" ] || continue
  [[ "${words[1]:-}" == --from=* ]] && continue
  for src in "${words[@]:1:${#words[@]}-2}"; do
    if [ ! -e "$here/$src" ]; then
      echo "lint-docker: Dockerfile copies $src, which does not exist" >&2
      missing=1
    fi
  done
done < "$here/Dockerfile"
exit "$missing"
