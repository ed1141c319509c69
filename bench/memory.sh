#!/usr/bin/env bash
# Issue "Foundation" acceptance: pushing and pulling a 1 GB model stays under 150 MB peak RSS.
# Pushes and pulls a 1 GiB random model with omsign under /usr/bin/time -v against a local
# docker-registry and fails (exit 1) when either peak RSS is above the limit.
# Usage: bash bench/memory.sh [SIZE] (default 1G); LIMIT_MB=150 to change the bound.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
OMSIGN="${OMSIGN:-$ROOT/.venv/bin/omsign}"
SIZE="${1:-1G}"
LIMIT_MB="${LIMIT_MB:-150}"

for tool in /usr/bin/time docker-registry; do
  if ! command -v "$tool" >/dev/null; then
    echo "error: $tool not found (apt-get install time docker-registry)" >&2
    exit 2
  fi
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/omsign-memory-XXXXXX")"
REG_PID=""
cleanup() {
  if [ -n "$REG_PID" ] && kill -0 "$REG_PID" 2>/dev/null; then
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# free disk: model + registry copy + pulled copy, plus slack
need_kb=$(( $("$PY" -c "import sys; sys.path.insert(0, '$ROOT/bench'); from make_models import parse_size; print(parse_size('$SIZE') // 1024)") * 3 + 1048576 ))
free_kb=$(df -Pk "$WORK" | awk 'NR==2 {print $4}')
if [ "$free_kb" -lt "$need_kb" ]; then
  echo "error: $((free_kb / 1024)) MiB free in $WORK, need about $((need_kb / 1024)) MiB" >&2
  exit 2
fi

echo "generating a $SIZE model in $WORK/model ..."
"$PY" "$ROOT/bench/make_models.py" --size "$SIZE" "$WORK/model"

PORT=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
mkdir -p "$WORK/storage"
cat >"$WORK/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT
EOF
docker-registry serve "$WORK/config.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 1 200); do
  if curl -fs -o /dev/null "http://127.0.0.1:$PORT/v2/" 2>/dev/null \
     || "$PY" -c "import httpx,sys; sys.exit(0 if httpx.get('http://127.0.0.1:$PORT/v2/').status_code == 200 else 1)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
REF="127.0.0.1:$PORT/bench/memory:v1"
export XDG_CACHE_HOME="$WORK/cache"

status=0
measure() {  # measure NAME CMD...: run under /usr/bin/time -v, print and check peak RSS
  local name="$1"; shift
  local out="$WORK/$name.time"
  if ! /usr/bin/time -v -o "$out" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"; then
    echo "$name: FAILED: $*" >&2
    tail -n 5 "$WORK/$name.err" >&2
    status=1
    return
  fi
  local kb wall
  kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$out")
  # "150 MB" read strictly as 150 x 10^6 bytes (= 143 MiB); time -v reports KiB
  local bytes=$(( kb * 1024 )) mib=$(( (kb + 1023) / 1024 ))
  local shown="peak RSS ${mib} MiB = $(( bytes / 1000000 )) MB (limit ${LIMIT_MB} MB), wall $wall"
  if [ "$bytes" -le $(( LIMIT_MB * 1000000 )) ]; then
    echo "$name: $shown: OK"
  else
    echo "$name: $shown: ABOVE LIMIT"
    status=1
  fi
}

measure push "$OMSIGN" push "$WORK/model" "$REF" --no-progress --no-cache
measure pull "$OMSIGN" pull "$REF" "$WORK/pulled" --no-progress
if [ "$status" -eq 0 ]; then
  cmp -s "$WORK/model/model-00001-of-00004.safetensors" "$WORK/pulled/model-00001-of-00004.safetensors" \
    || { echo "pull: content differs from the pushed model" >&2; status=1; }
fi
if [ "$status" -eq 0 ]; then
  echo "memory check passed: push and pull of a $SIZE model stay within ${LIMIT_MB} MB peak RSS"
else
  echo "memory check FAILED" >&2
fi
exit "$status"
