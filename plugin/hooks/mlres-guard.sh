#!/bin/sh
# The plugin's hook entry point. Claude Code lets a tool call through when a hook command cannot
# start at all, so this wrapper (which always starts) turns "mlres is not installed" into a deny.
if ! command -v mlres >/dev/null 2>&1; then
  echo "[mlres guard] mlres is not on PATH, so nothing can be checked: denied. Install it (cargo install --path crates/mlres) and restart Claude Code." >&2
  exit 2
fi
exec mlres guard "$@"
