#!/usr/bin/env bash
# Creates the Python venv the TRL end-to-end test (crates/mlres/tests/it/trl.rs) runs its
# training jobs with: torch, transformers, trl, peft, datasets at the versions pinned in
# requirements.txt beside this script. The one place that venv is made: `.ci/run` calls it
# before `cargo test`, and the test calls it again (a no-op when the venv is current).
#
#   MLRES_TRL_VENV     where the venv goes (default: $CARGO_TARGET_DIR/trl-venv, else
#                      target/trl-venv in the workspace)
#   MLRES_TRL_PYTHON   the interpreter it is made from (default /usr/bin/python3). It must be
#                      one a sandboxed mlres job can see (a system directory: /usr, /opt), not
#                      one under $HOME (pyenv, conda, uv-managed): jobs only see system
#                      directories, their code and the project.
#
# pip's cache (~/.cache/pip, or PIP_CACHE_DIR) is reused, so only the first run downloads the
# ~3 GB of wheels. The venv is built beside its final path and renamed into place when pip
# succeeded, so an interrupted run never leaves a half-made venv that looks current. Prints
# the venv's path on the last line of stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
workspace=$(cd "$here/../../../.." && pwd)
venv=${MLRES_TRL_VENV:-${CARGO_TARGET_DIR:-$workspace/target}/trl-venv}
python=${MLRES_TRL_PYTHON:-/usr/bin/python3}
stamp="$venv/.mlres-requirements.sha256"
want=$( (cat "$here/requirements.txt"; "$python" --version) | sha256sum | cut -d' ' -f1)

# huggingface_hub 1.12 beside it (not on the venv's path; PYTHONPATH=$venv/hub-1.12): the
# last release whose run_uv_job ships a local script in LOCAL_FILES_ENCODED, the way mlres
# ships a job's code. The hf-jobs test compares what it sends with what mlres sends.
hub112() {
    local dir="$venv/hub-1.12"
    if [ -f "$dir/.ok" ]; then return 0; fi
    rm -rf "$dir.partial"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-warn-conflicts --target "$dir.partial" huggingface_hub==1.12.2 >&2
    touch "$dir.partial/.ok"
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
}

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c 'import trl' 2>/dev/null; then
    hub112
    echo "trl venv: up to date at $venv" >&2
    echo "$venv"
    exit 0
fi
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    echo "error: $python cannot create a venv (Debian/Ubuntu: sudo apt-get install python3-venv)" >&2
    exit 1
fi
mkdir -p "$(dirname "$venv")"
tmp="$venv.partial.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
"$python" -m venv "$tmp"
"$tmp/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"$tmp/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2
echo "$want" >"$tmp/.mlres-requirements.sha256"
rm -rf "$venv"
mv "$tmp" "$venv"
trap - EXIT
hub112
echo "trl venv: created $venv in $(( $(date +%s) - start ))s ($(du -sh "$venv" | cut -f1))" >&2
echo "$venv"
