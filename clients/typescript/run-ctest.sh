#!/usr/bin/env bash
# The TypeScript client's tests as one ctest: copies the package into the build tree (the
# source tree stays clean), installs its locked dependencies (`npm ci`, package-lock.json)
# and runs `npm test` against the build's binaries. Exit 77 (ctest skip) if node or npm is
# not installed.
#   run-ctest.sh PACKAGE_SOURCE_DIR WORK_DIR BIN_DIR SCHEMA_FILE
set -euo pipefail
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node or npm not installed: skipping the TypeScript client's tests (tools/install-deps installs them)"
  exit 77
fi
src=$1 work=$2 bin=$3 schema=$4
mkdir -p "$work"
rm -rf "$work/src" "$work/test" "$work/dist"
cp -r "$src/package.json" "$src/package-lock.json" "$src/tsconfig.json" "$src/src" "$src/test" "$work/"
cd "$work"
echo "node $(node --version), npm $(npm --version), in $work"
npm ci --no-audit --no-fund
REPLICATOR_BIN_DIR=$bin REPLICATOR_SCHEMA=$schema npm test
