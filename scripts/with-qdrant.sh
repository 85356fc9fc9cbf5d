#!/usr/bin/env bash
# Run a command with a real Qdrant server beside it: ../shared/bin/qdrant (see
# ../shared/bin/README.md) on two free loopback ports with its storage in a temporary
# directory, QDRANT_URL pointing at its gRPC port. The server stops when the command ends.
# Without the binary the command runs alone (the server tests then say they skipped;
# under CI=true they fail, so a green CI means the server suite really ran).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
qdrant="${QDRANT_BIN:-$here/../shared/bin/qdrant}"
if [ -n "${QDRANT_URL:-}" ] || [ ! -x "$qdrant" ]; then
    [ -x "$qdrant" ] || echo "with-qdrant: $qdrant not found; running without a Qdrant server" >&2
    exec "$@"
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
http_port=$(free_port)
grpc_port=$(free_port)
while [ "$grpc_port" = "$http_port" ]; do grpc_port=$(free_port); done
dir=$(mktemp -d)
# From inside $dir: the server leaves a .qdrant-initialized marker in its working directory.
(cd "$dir" && exec env \
QDRANT__STORAGE__STORAGE_PATH="$dir/storage" \
QDRANT__STORAGE__SNAPSHOTS_PATH="$dir/snapshots" \
QDRANT__SERVICE__HOST=127.0.0.1 \
QDRANT__SERVICE__HTTP_PORT="$http_port" \
QDRANT__SERVICE__GRPC_PORT="$grpc_port" \
QDRANT__TELEMETRY_DISABLED=true \
    "$qdrant" --disable-telemetry >"$dir/qdrant.log" 2>&1) &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$http_port/readyz', timeout=1)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "with-qdrant: the Qdrant server exited; its log:" >&2
        cat "$dir/qdrant.log" >&2
        exit 1
    fi
    sleep 0.2
done
echo "with-qdrant: Qdrant $("$qdrant" --version 2>/dev/null | head -1) on 127.0.0.1:$grpc_port (gRPC)" >&2
QDRANT_URL="http://127.0.0.1:$grpc_port" "$@"
