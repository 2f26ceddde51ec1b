#!/usr/bin/env bash
# Build the single-file executable dist/gosight: the web app, then PyInstaller.
# Needs build/setup.sh to have run (it creates .venv); installs PyInstaller there.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

if [ ! -x .venv/bin/python ]; then
    echo "build-binary: .venv is missing; run build/setup.sh first" >&2
    exit 1
fi
.venv/bin/python -m pip install -q -r build/requirements-build.txt

(cd gosight/ui && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
.venv/bin/python -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller gosight.spec
echo "build-binary: $(du -h dist/gosight | cut -f1) dist/gosight"
