#!/usr/bin/env bash
# Installs the real origin servers that tests/differential.rs and tests/streams.rs put behind
# usher, into target/test-origins/ (never committed): a Python venv with Flask (Werkzeug's server)
# and `websockets`, and Express 5 and Express 4 from npm. nginx comes from apt (installed here
# when missing and running as root). Pinned versions; idempotent: a second run with the same pins
# only checks. scripts/test.sh calls it before the tests; run it by hand before
# `cargo test --test differential` or `--test streams`.
set -euo pipefail
cd "$(dirname "$0")/.."

FLASK=3.1.3
WERKZEUG=3.1.9
WEBSOCKETS=17.4
EXPRESS=5.3.0
EXPRESS4=4.22.3

dir=target/test-origins
pins="flask==$FLASK werkzeug==$WERKZEUG websockets==$WEBSOCKETS express@$EXPRESS express4@$EXPRESS4"
say() { echo "[test-origins] $*"; }
as_root() { [[ $(id -u) -eq 0 ]]; }
apt_install() {
  if as_root; then
    say "installing with apt: $*"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  else
    say "missing: $* (run as root, or: sudo apt-get install -y $*)"
    return 1
  fi
}

command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || apt_install nginx
command -v python3 >/dev/null 2>&1 || apt_install python3
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
command -v npm >/dev/null 2>&1 || apt_install npm

mkdir -p "$dir"
if [[ -f $dir/pins && $(cat "$dir/pins") == "$pins" && -x $dir/venv/bin/python ]] &&
  "$dir/venv/bin/python" -c 'import flask, websockets' 2>/dev/null &&
  [[ -f $dir/node_modules/express/package.json && -f $dir/node_modules/express4/package.json ]]; then
  say "up to date in $dir ($pins)"
  exit 0
fi
rm -f "$dir/pins"

say "Python venv in $dir/venv: flask $FLASK, werkzeug $WERKZEUG, websockets $WEBSOCKETS"
[[ -x $dir/venv/bin/python ]] || python3 -m venv "$dir/venv"
"$dir/venv/bin/python" -m pip install -q --disable-pip-version-check \
  "flask==$FLASK" "werkzeug==$WERKZEUG" "websockets==$WEBSOCKETS"

say "npm into $dir/node_modules: express $EXPRESS, express4 (express $EXPRESS4)"
[[ -f $dir/package.json ]] || echo '{"private": true}' >"$dir/package.json"
npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
  "express@$EXPRESS" "express4@npm:express@$EXPRESS4"

echo "$pins" >"$dir/pins"
say "installed in $dir ($pins)"
