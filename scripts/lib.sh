# shellcheck shell=bash
# Shared settings of scripts/*: where state lives and how to start the mirror.
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
STATE=${MONSTACK_STATE:-$HOME/.cache/monitoring-stack}
VENV=${MONSTACK_VENV:-$ROOT/.venv}
MIRROR_DIR=$STATE/mirror
MIRROR_PORT=${MONSTACK_MIRROR_PORT:-8765}
export MONSTACK_MIRROR_URL=${MONSTACK_MIRROR_URL:-http://127.0.0.1:$MIRROR_PORT}
export MONSTACK_MIRROR_DIR=$MIRROR_DIR
mkdir -p "$STATE"

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

activate() {
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  export ANSIBLE_HOME=$STATE/ansible ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 NO_COLOR=1
}

# Serve the artifact mirror on loopback for the duration of the calling script.
start_mirror() {
  if curl -fsS -o /dev/null "$MONSTACK_MIRROR_URL/manifest.json" 2>/dev/null; then return; fi
  python3 -m http.server "$MIRROR_PORT" --bind 127.0.0.1 --directory "$MIRROR_DIR" >"$STATE/mirror-http.log" 2>&1 &
  MIRROR_PID=$!
  for _ in $(seq 50); do
    curl -fsS -o /dev/null "$MONSTACK_MIRROR_URL/manifest.json" 2>/dev/null && return
    sleep 0.1
  done
  die "the artifact mirror did not start (see $STATE/mirror-http.log)"
}

stop_mirror() { [[ -n ${MIRROR_PID:-} ]] && kill "$MIRROR_PID" 2>/dev/null || true; }
