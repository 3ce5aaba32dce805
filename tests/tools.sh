#!/usr/bin/env bash
# Installs the outside tools some integration tests drive (tests/it/http_schema.rs,
# tests/it/http_tools.rs, tests/it/upload.rs, tests/it/dht_interop.rs),
# idempotently: a run with everything in place changes nothing. Packages come from PyPI
# and the distribution's package mirror only.
#
#   bash tests/tools.sh          # everything
#   bash tests/tools.sh NAME...  # some of it (schemathesis, prometheus, chromium, curl,
#                                # libtorrent)
#
# The Python tools go into one virtual environment, target/tools-venv (or
# $P2PSHARE_TOOLS_VENV); the tests look for them there and on PATH. Without them the
# tests say "skipped: ..." and pass, unless P2PSHARE_REQUIRE_TOOLS=1 (as in CI).
#
# One function per tool, install_NAME; a new tool is a new function and a new name in
# TOOLS.
set -euo pipefail
cd "$(dirname "$0")/.."

# The versions the tests were checked with.
SCHEMATHESIS_VERSION=4.32.5

TOOLS=(schemathesis prometheus chromium curl libtorrent)
VENV=${P2PSHARE_TOOLS_VENV:-target/tools-venv}

say() { printf 'tools: %s\n' "$*"; }

# Installs Debian packages as root (or through sudo); the package lists are updated
# once per run.
apt_updated=
apt_install() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "tools: need root or sudo to install: $*" >&2
            return 1
        }
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 || {
        echo "tools: no apt-get to install $* with" >&2
        return 1
    }
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$apt_updated" ]; then
        "${sudo[@]}" apt-get update -qq
        apt_updated=1
    fi
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@"
}

# The tools' virtual environment, made once. Debian's python3 needs python3-venv
# (ensurepip) for `python3 -m venv`.
ensure_venv() {
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        return
    fi
    command -v python3 >/dev/null 2>&1 || apt_install python3
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        say "python3 -m venv failed: installing python3-venv"
        apt_install python3-venv
        python3 -m venv "$VENV"
    fi
    say "made the virtual environment $VENV"
}

# Installs PACKAGE==VERSION into the venv unless that version is there already.
pip_pinned() {
    local package=$1 version=$2
    local have
    have=$("$VENV/bin/python" -m pip show "$package" 2>/dev/null | sed -n 's/^Version: //p' || true)
    if [ "$have" = "$version" ]; then
        say "$package $version is installed"
        return
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "$package==$version"
    say "installed $package $version"
}

# schemathesis: checks the HTTP interface against docs/http-api.yaml.
install_schemathesis() {
    ensure_venv
    pip_pinned schemathesis "$SCHEMATHESIS_VERSION"
    "$VENV/bin/st" --version
}

# A Debian package that provides COMMAND, installed when COMMAND is missing.
apt_tool() { # COMMAND PACKAGE
    if command -v "$1" >/dev/null 2>&1; then
        say "$1 is installed"
        return
    fi
    apt_install "$2"
    say "installed $2"
}

# prometheus: scrapes /metrics in tests/it/http_tools.rs (Debian's package).
install_prometheus() {
    apt_tool prometheus prometheus
    prometheus --version 2>&1 | head -n 1
}

# chromium: renders the dashboard headless in tests/it/http_tools.rs (Debian's package).
install_chromium() {
    apt_tool chromium chromium
    chromium --version 2>/dev/null | head -n 1
}

# curl: posts a form to a peer's /upload in tests/it/upload.rs (Debian's package).
install_curl() {
    apt_tool curl curl
    curl --version | head -n 1
}

# libtorrent: a second DHT implementation in tests/it/dht_interop.rs (Debian's
# python3-libtorrent, a module for Debian's own /usr/bin/python3).
install_libtorrent() {
    if /usr/bin/python3 -c 'import libtorrent' >/dev/null 2>&1; then
        say "python3-libtorrent is installed"
    else
        apt_install python3-libtorrent
        say "installed python3-libtorrent"
    fi
    /usr/bin/python3 -c 'import libtorrent; print("libtorrent", libtorrent.__version__)'
}

main() {
    local wanted=("$@")
    [ "${#wanted[@]}" -gt 0 ] || wanted=("${TOOLS[@]}")
    for tool in "${wanted[@]}"; do
        if ! declare -F "install_$tool" >/dev/null; then
            echo "tools: no such tool: $tool (known: ${TOOLS[*]})" >&2
            exit 2
        fi
        "install_$tool"
    done
}

main "$@"
