#!/usr/bin/env bash
# Builds the Debian package of the engine with cargo-deb (installed on first use):
#
#   scripts/package.sh            -> target/debian/hotline_<version>-1_<arch>.deb
#
# The package (see [package.metadata.deb] in Cargo.toml): /usr/bin/hotline, the systemd
# unit, /etc/hotline/{hotline,agents}.toml as conffiles, the prompts, the Prometheus
# rules and the Grafana dashboard under /usr/share/hotline/, and a postinst that makes
# the hotline user and /var/lib/hotline/{data,recordings} with their modes.
# Check it with scripts/check-package.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "package: installing cargo-deb"
  cargo install --locked cargo-deb
fi
# The dashboard and rules are checked by the test suite; make sure they still parse.
python3 -c 'import json,sys; json.load(open("deploy/grafana/hotline.json"))' 2>/dev/null \
  || { echo "package: deploy/grafana/hotline.json is not valid JSON" >&2; exit 1; }
cargo deb --locked "$@"
ls -l target/debian/*.deb
