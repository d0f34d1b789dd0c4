#!/bin/sh
# Checks the systemd unit with `systemd-analyze verify`. verify needs the
# ExecStart binary to exist, so it checks a copy that runs the built
# replicatord instead of /usr/bin/replicatord. Any warning fails the test.
#   verify_unit.sh UNIT_FILE REPLICATORD_BINARY
set -eu
unit=$1
binary=$2
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "SKIP: systemd-analyze is not installed (apt-get install systemd)"
  exit 77
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
name=$(basename "$unit")
grep -q '^ExecStart=/usr/bin/replicatord ' "$unit" || {
  echo "FAIL: $unit has no ExecStart=/usr/bin/replicatord"; exit 1; }
sed "s|/usr/bin/replicatord|$binary|" "$unit" > "$scratch/$name"
# The template and one instance of it, as systemctl start replicatord@default would load it.
instance=$(echo "$name" | sed 's/@\.service$/@default.service/')
cp "$scratch/$name" "$scratch/$instance"
for u in "$name" "$instance"; do
  if ! (cd "$scratch" && systemd-analyze verify "./$u") > "$scratch/out" 2>&1; then
    echo "FAIL: systemd-analyze verify $u:"; cat "$scratch/out"; exit 1
  fi
  # verify exits 0 on unknown keys and bad values, which it only warns about.
  if [ -s "$scratch/out" ]; then
    echo "FAIL: systemd-analyze verify $u warned:"; cat "$scratch/out"; exit 1
  fi
done
for want in 'User=replicator' 'Restart=on-failure' 'ExecStart=/usr/bin/replicatord --config=/etc/replicator/%i.conf' 'StateDirectory=replicator/%i' 'NoNewPrivileges=yes' 'ProtectSystem=strict'; do
  grep -qxF "$want" "$unit" || { echo "FAIL: $unit lacks '$want'"; exit 1; }
done
echo "OK: systemd-analyze verify accepts $name"
