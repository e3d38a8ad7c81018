# shellcheck shell=bash
# Shared settings of scripts/*: where state lives and how to start the mirror.
ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
STATE=${MONSTACK_STATE:-$HOME/.cache/monitoring-stack}
VENV=${MONSTACK_VENV:-$ROOT/.venv}
VENV_OLDEST=${MONSTACK_VENV_OLDEST:-$ROOT/.venv-oldest}
MIRROR_DIR=$STATE/mirror
MIRROR_PORT=${MONSTACK_MIRROR_PORT:-8765}
export MONSTACK_MIRROR_URL=${MONSTACK_MIRROR_URL:-http://127.0.0.1:$MIRROR_PORT}
export MONSTACK_MIRROR_DIR=$MIRROR_DIR
# Where the lab and the tests install releases from: written by scripts/setup to
# $MONSTACK_STATE/artifact-source.yml, read through tests/harness/artifact_source.py (the
# monstack_artifacts vars plugin, the scenarios' conftest, the benchmark, source_get below).
export MONSTACK_STATE=$STATE
mkdir -p "$STATE"

# each step says when it began and how far into the run (the first script that sourced this
# file started it), so a slow stage shows in any log, CI's included
export MONSTACK_RUN_START=${MONSTACK_RUN_START:-$(date +%s)}
step() { printf '\n==> %s  [%(%T)T, +%ds]\n' "$*" -1 $(($(date +%s) - MONSTACK_RUN_START)); }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The path of a Python X.Y that can make a venv and speak TLS, or nothing: MONSTACK_PYTHON (for
# 3.13), pythonX.Y on PATH, a pyenv version, Debian's.
find_python() {
  local version=$1 candidate
  local candidates=("$(command -v "python$version" 2>/dev/null || true)"
                    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version"*/bin/"python$version"
                    "/usr/bin/python$version" "/usr/local/bin/python$version")
  [[ $version == 3.13 && -n ${MONSTACK_PYTHON:-} ]] && candidates=("$MONSTACK_PYTHON")
  for candidate in "${candidates[@]}"; do
    [[ -n $candidate && -x $candidate ]] || continue
    "$candidate" -c 'import ssl, venv, ensurepip, sys; assert sys.version_info[:2] == tuple(map(int, sys.argv[1].split(".")))' \
      "$version" >/dev/null 2>&1 && { echo "$candidate"; return 0; }
  done
  return 1
}

# install_project DIR PYTHON EXTRA LOG [PIP ARGS...]: DIR as a new venv of PYTHON holding
# `pip install .[EXTRA]` of this project (with PIP ARGS: constraints, an ansible-core range);
# pip's output goes to LOG. Fails (status 1) when pip does.
install_project() {
  local dir=$1 python=$2 extra=$3 log=$4 src status=0
  shift 4
  rm -rf "$dir"
  "$python" -m venv "$dir" || die "$python -m venv failed (Debian: apt-get install python3-venv)"
  "$dir/bin/pip" install -q --upgrade pip >"$log" 2>&1
  # a copy of the project, so that pip's build leaves nothing in the checkout
  src=$(mktemp -d)
  cp "$ROOT/pyproject.toml" "$ROOT/README.md" "$src/"
  "$dir/bin/pip" install -q "$@" "$src[$extra]" >>"$log" 2>&1 || status=1
  rm -rf "$src"
  return $status
}

# make_venv DIR PYTHON PAIR EXTRA: install_project pinned by constraints/PAIR.txt, redone only
# when the project, the constraints or the Python changed.
make_venv() {
  local dir=$1 python=$2 pair=$3 extra=$4 stamp
  stamp="$dir/.monstack-$(cat "$ROOT/pyproject.toml" "$ROOT/constraints/$pair.txt" <("$python" -V) | sha256sum | cut -c1-16)"
  [[ -e $stamp ]] && return 0
  if ! install_project "$dir" "$python" "$extra" "$STATE/pip-$pair.log" -c "$ROOT/constraints/$pair.txt"; then
    grep -v "^WARNING: Location" "$STATE/pip-$pair.log" >&2
    die "pip could not install the $pair toolchain (constraints/$pair.txt) into $dir (see above)"
  fi
  echo "$pair toolchain: $("$dir/bin/ansible" --version | head -1) on $("$dir/bin/python" -V)"
  touch "$stamp"
}

activate() {
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  export ANSIBLE_HOME=$STATE/ansible ANSIBLE_FORCE_COLOR=0 PY_COLORS=0 NO_COLOR=1
}

# Run an Ansible command with the artifact source scripts/setup chose (the lab's runs; Molecule
# sets the same in .config/molecule/config.yml). Not exported: unit tests render role defaults.
with_artifact_source() {
  ANSIBLE_VARS_PLUGINS=$ROOT/tests/harness/vars_plugins ANSIBLE_VARS_ENABLED=monstack_artifacts,host_group_vars "$@"
}

# What a person reads: where releases come from and which components are stand-ins.
source_summary() { "$VENV/bin/python" "$ROOT/tests/harness/artifact_source.py" --describe; }
# One value of that choice, e.g. source_get monstack_standins
source_get() { "$VENV/bin/python" "$ROOT/tests/harness/artifact_source.py" --get "$1"; }

mirror_answers() { curl -fsS --noproxy '*' -o /dev/null "$MONSTACK_MIRROR_URL/manifest.json" 2>/dev/null; }
# ... and serves this state directory's mirror, not another checkout's
mirror_is_ours() {
  curl -fsS --noproxy '*' "$MONSTACK_MIRROR_URL/manifest.json" 2>/dev/null | cmp -s - "$MIRROR_DIR/manifest.json"
}

# Serve the artifact mirror on loopback unless something already answers there.
#   start_mirror            for the life of the calling script (stop_mirror ends it)
#   start_mirror PIDFILE    detached, outliving the caller; its pid goes to PIDFILE
start_mirror() {
  if mirror_answers; then
    mirror_is_ours && return
    die "$MONSTACK_MIRROR_URL serves another mirror than $MIRROR_DIR (another checkout or state directory):
  stop that server or set MONSTACK_MIRROR_PORT"
  fi
  [[ -f $MIRROR_DIR/manifest.json ]] || die "no artifact mirror in $MIRROR_DIR: run scripts/setup first"
  if [[ -n ${1:-} ]]; then
    setsid nohup python3 -m http.server "$MIRROR_PORT" --bind 127.0.0.1 --directory "$MIRROR_DIR" \
      >"$STATE/mirror-http.log" 2>&1 </dev/null &
    echo $! >"$1"
  else
    python3 -m http.server "$MIRROR_PORT" --bind 127.0.0.1 --directory "$MIRROR_DIR" >"$STATE/mirror-http.log" 2>&1 &
    MIRROR_PID=$!
  fi
  for _ in $(seq 50); do
    mirror_answers && { echo "mirror: serving $MIRROR_DIR at $MONSTACK_MIRROR_URL"; return; }
    sleep 0.1
  done
  die "the artifact mirror did not start (see $STATE/mirror-http.log)"
}

stop_mirror() { [[ -n ${MIRROR_PID:-} ]] && kill "$MIRROR_PID" 2>/dev/null || true; }
