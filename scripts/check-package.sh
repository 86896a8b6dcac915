#!/usr/bin/env bash
# Installs the Debian package in a throw-away root and checks files, users and modes:
#
#   scripts/check-package.sh [target/debian/hotline_*.deb]
#
# The scratch root is an overlay over this machine's own / (copy-on-write: dpkg,
# adduser and the maintainer scripts run for real, and every change lands in a
# temporary directory), inside a private mount namespace, so the host is untouched.
# Needs root, unshare and overlayfs. Not part of `cargo test`: run it after
# scripts/package.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

deb="${1:-$(ls -t target/debian/hotline_*.deb 2>/dev/null | head -1)}"
[ -f "$deb" ] || { echo "check-package: no package; run scripts/package.sh first" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "check-package: needs root (for the namespace and chroot)" >&2; exit 1; }
deb="$(realpath "$deb")"

echo "check-package: $deb"
fail=0
check() { # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "  ok    $1"; else echo "  FAIL  $1"; fail=1; fi
}

# 1. The archive itself: paths and modes as shipped.
listing="$(dpkg-deb -c "$deb")"
has() { grep -Eq "^$1 +(root/root|0/0) .* \./$2$" <<<"$listing"; }
check "binary /usr/bin/hotline 0755" has '-rwxr-xr-x' 'usr/bin/hotline'
check "unit hotline.service" grep -Eq '\./(usr/)?lib/systemd/system/hotline\.service$' <<<"$listing"
check "config /etc/hotline/hotline.toml 0640" has '-rw-r-----' 'etc/hotline/hotline.toml'
check "config /etc/hotline/agents.toml 0640" has '-rw-r-----' 'etc/hotline/agents.toml'
check "dialplan /etc/hotline/dialplan.toml 0640" has '-rw-r-----' 'etc/hotline/dialplan.toml'
check "greeting prompt" has '-rw-r--r--' 'usr/share/hotline/prompts/greeting.wav'
check "alert rules" has '-rw-r--r--' 'usr/share/hotline/prometheus/hotline-rules.yml'
check "dashboard" has '-rw-r--r--' 'usr/share/hotline/grafana/hotline.json'
check "grafana provisioning" has '-rw-r--r--' 'usr/share/hotline/grafana/provisioning/hotline-dashboards.yml'
conffiles="$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)"
check "conffiles list both config files" \
  bash -c 'grep -qx /etc/hotline/hotline.toml <<<"$0" && grep -qx /etc/hotline/agents.toml <<<"$0"' "$conffiles"

# 2. A real install in the throw-away root.
scratch="$(mktemp -d /tmp/hotline-check-package.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch"/{upper,work,root}
cp "$deb" "$scratch/upper/hotline.deb" 2>/dev/null || true

unshare --mount --propagation private bash -s "$scratch" "$deb" <<'INNER' || fail=1
set -euo pipefail
scratch="$1"; deb="$2"; root="$scratch/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$root"
mount --bind /proc "$root/proc"
mount --bind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
cp "$deb" "$root/tmp/hotline.deb"
in_root() { chroot "$root" "$@"; }
fail=0
check() { if "${@:2}"; then echo "  ok    $1"; else echo "  FAIL  $1"; fail=1; fi; }
mode_owner() { # mode_owner PATH MODE USER GROUP
  local got; got="$(in_root stat -c '%a %U %G' "$1" 2>/dev/null || echo missing)"
  [ "$got" = "$2 $3 $4" ] || { echo "        $1: $got, wanted $2 $3 $4"; return 1; }
}

in_root dpkg -i /tmp/hotline.deb >"$scratch/dpkg.log" 2>&1 || { cat "$scratch/dpkg.log"; exit 1; }
echo "  ok    dpkg -i in the scratch root"
sed 's/^/        | /' "$scratch/dpkg.log" | grep -i 'hotline:' || true
check "user hotline (system, no login shell)" bash -c "chroot '$root' getent passwd hotline | grep -q ':/var/lib/hotline:/usr/sbin/nologin$'"
check "group hotline" bash -c "chroot '$root' getent group hotline >/dev/null"
check "/usr/bin/hotline 755 root" mode_owner /usr/bin/hotline 755 root root
check "/etc/hotline 750 root:hotline" mode_owner /etc/hotline 750 root hotline
check "/etc/hotline/hotline.toml 640 root:hotline" mode_owner /etc/hotline/hotline.toml 640 root hotline
check "/etc/hotline/agents.toml 640 root:hotline" mode_owner /etc/hotline/agents.toml 640 root hotline
check "/etc/hotline/dialplan.toml 640 root:hotline" mode_owner /etc/hotline/dialplan.toml 640 root hotline
check "/var/lib/hotline 750 hotline" mode_owner /var/lib/hotline 750 hotline hotline
check "/var/lib/hotline/data 700 hotline (R12)" mode_owner /var/lib/hotline/data 700 hotline hotline
check "/var/lib/hotline/recordings 700 hotline (R12)" mode_owner /var/lib/hotline/recordings 700 hotline hotline
check "/var/log/hotline 750 hotline" mode_owner /var/log/hotline 750 hotline hotline
check "dpkg knows the conffiles" bash -c "chroot '$root' dpkg-query -W -f='\${Conffiles}' hotline | grep -q /etc/hotline/agents.toml"
unit="$(in_root sh -c 'ls /lib/systemd/system/hotline.service /usr/lib/systemd/system/hotline.service 2>/dev/null | head -1')"
check "the unit is installed ($unit)" test -n "$unit"
check "systemd-analyze verify on the installed unit" in_root systemd-analyze verify "$unit"
check "the hotline user reads its config (check-config)" bash -c "chroot '$root' runuser -u hotline -- /usr/bin/hotline check-config /etc/hotline/hotline.toml >/dev/null"
check "nobody else reads it" bash -c "! chroot '$root' runuser -u nobody -- cat /etc/hotline/hotline.toml 2>/dev/null"
check "prompts the config names are installed" in_root test -f /usr/share/hotline/prompts/hold-music.wav

# Purge: the user goes, the records stay (R10, R22).
in_root touch /var/lib/hotline/data/work-orders.db
in_root dpkg --purge hotline >"$scratch/purge.log" 2>&1 || { cat "$scratch/purge.log"; exit 1; }
check "purge removes the user" bash -c "! chroot '$root' getent passwd hotline"
check "purge keeps the work orders" in_root test -f /var/lib/hotline/data/work-orders.db
check "purge removes the config" bash -c "! chroot '$root' test -e /etc/hotline/hotline.toml"
exit "$fail"
INNER

check "the host is untouched (no hotline user here)" bash -c '! getent passwd hotline >/dev/null'
if [ "$fail" = 0 ]; then echo "check-package: all checks passed"; else echo "check-package: FAILED" >&2; exit 1; fi
