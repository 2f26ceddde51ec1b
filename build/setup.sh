#!/usr/bin/env bash
# Prepare a fresh Debian 12 machine (run as root) to run and test GoSight from this checkout:
# system packages, a virtual environment in .venv with the project installed, and the
# web app built into gosight/ui/dist. Safe to run again; steps already done are quick.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

# System packages: Python's venv, Node for the web app, and the real components the
# tests run against (node_exporter, VictoriaMetrics, Chromium, Podman with runc; the
# test containers use slirp4netns networking, which leaves the host's bridges and
# firewall alone).
packages=(python3-venv python3-dev nodejs npm prometheus-node-exporter victoria-metrics chromium
          busybox-static iproute2 podman runc slirp4netns)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# Node and npm may come from elsewhere than Debian; an existing node is enough.
if command -v node >/dev/null && command -v npm >/dev/null; then
    missing=("${missing[@]/nodejs}")
    missing=("${missing[@]/npm}")
fi
read -r -a missing <<< "${missing[*]:-}"
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    # A policy that refuses to start services keeps Debian from starting node_exporter and
    # VictoriaMetrics on install: the tests start their own on free ports, and a service
    # the administrator already runs is left alone.
    policy=/usr/sbin/policy-rc.d
    created_policy=no
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        created_policy=yes
        trap 'rm -f "$policy"' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$created_policy" = yes ]; then
        rm -f "$policy"
        trap - EXIT
    fi
fi

# Python: the project and its test dependencies in .venv.
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-test.txt
.venv/bin/python -m pip install -q --no-deps -e .

# The web app, built into gosight/ui/dist where the server serves it from.
if [ -f gosight/ui/package.json ]; then
    (cd gosight/ui && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
fi
# The OpenID Connect provider (npm's oidc-provider) that the single sign-on tests run; tests only.
if [ -f tests/auth/oidc-provider/package-lock.json ]; then
    (cd tests/auth/oidc-provider && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup: done"
