#!/usr/bin/env bash
# Builds the Debian package (build-deb.sh) and installs it with dpkg in a
# throwaway root: an overlay of / in a private mount namespace, so that
# dpkg, its maintainer scripts and man-db run for real against this
# system's packages while nothing reaches the real root. Then checks what
# an operator relies on, removes the package and checks that too.
# Needs root (mount namespace, overlayfs, chroot). Run by .ci/test.
set -euo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
stamp() { echo "== [$(( $(date +%s) - T0 )) s] $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

stamp "building the package"
deb=$(bash packaging/build-deb.sh | tail -n 1)
[ -f "$deb" ] || fail "build-deb.sh printed no package: $deb"
stamp "built $deb ($(du -k "$deb" | cut -f1) KiB)"

# The archive itself.
version=$(dpkg-deb -f "$deb" Version)
changelog=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
[ "$version" = "$changelog" ] ||
  fail "the package is $version, packaging/debian/changelog says $changelog"
cargo_version=$(cargo metadata --format-version 1 --no-deps --locked |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "vrrpd"))')
[ "${version%-*}" = "$cargo_version" ] || fail "package $version, crate $cargo_version"
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for path in ./usr/sbin/vrrpd ./etc/vrrpd/vrrpd.toml ./usr/lib/systemd/system/vrrpd.service \
  ./usr/share/man/man8/vrrpd.8.gz ./usr/share/man/man5/vrrpd.toml.5.gz \
  ./usr/share/bash-completion/completions/vrrpd ./usr/share/zsh/vendor-completions/_vrrpd \
  ./usr/share/fish/vendor_completions.d/vrrpd.fish ./usr/share/doc/vrrpd/copyright \
  ./usr/share/doc/vrrpd/changelog.Debian.gz ./usr/share/doc/vrrpd/third-party-licenses.gz \
  ./usr/share/doc/vrrpd/examples/haproxy_weight.toml; do
  grep -qxF "$path" <<<"$contents" || fail "$path is not in the package"
done
dpkg-deb -I "$deb" conffiles | grep -qxF /etc/vrrpd/vrrpd.toml || fail "vrrpd.toml is not a conffile"
stamp "archive: version $version, contents and conffiles as expected"

root_dir=$(mktemp -d /tmp/vrrpd-deb-test.XXXXXX)
trap 'rmdir "$root_dir" 2>/dev/null || true' EXIT
# Everything below runs in its own mount namespace: the overlay, the
# chroot and what dpkg writes vanish when it ends.
unshare --mount --propagation private -- bash -s "$deb" "$root_dir" <<'OUTER'
set -euo pipefail
deb=$1 dir=$2
mount -t tmpfs tmpfs "$dir"
mkdir "$dir/upper" "$dir/work" "$dir/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$dir/upper,workdir=$dir/work" "$dir/root"
mount -t proc proc "$dir/root/proc"
mount --rbind /dev "$dir/root/dev"
mount -t tmpfs tmpfs "$dir/root/run"
mount -t tmpfs tmpfs "$dir/root/tmp"
cp "$deb" "$dir/root/tmp/vrrpd.deb"
chroot "$dir/root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
  bash -s <<'INNER'
set -euo pipefail
fail() { echo "FAIL (installed): $*" >&2; exit 1; }
if dpkg-query -W vrrpd >/dev/null 2>&1; then
  dpkg --purge vrrpd >/dev/null
fi
dpkg -i /tmp/vrrpd.deb

[ "$(command -v vrrpd)" = /usr/sbin/vrrpd ] || fail "vrrpd is $(command -v vrrpd)"
v=$(vrrpd --version)
[[ $v =~ ^vrrpd\ [0-9]+\.[0-9]+\.[0-9]+\ \(commit\ ([0-9a-f]{12}|unknown)\)$ ]] ||
  fail "vrrpd --version: $v"
echo "ok: $v"

vrrpd check -c /etc/vrrpd/vrrpd.toml >/dev/null || fail "vrrpd check refuses the conffile"
# Its commented-out instance ("#" and no space) is a valid example too.
sed -E 's/^#([^ #!])/\1/' /etc/vrrpd/vrrpd.toml >/tmp/uncommented.toml
grep -q '^\[instance\.' /tmp/uncommented.toml || fail "the conffile has no example instance"
vrrpd check -c /tmp/uncommented.toml >/dev/null || fail "vrrpd check refuses the conffile's example"
echo "ok: vrrpd check accepts /etc/vrrpd/vrrpd.toml and its example"
dpkg-query -W -f='${Conffiles}\n' vrrpd | grep -q '/etc/vrrpd/vrrpd.toml' || fail "not a conffile"
# A conffile: the operator's edits survive installing the package again.
echo '# edited by the operator' >>/etc/vrrpd/vrrpd.toml
dpkg -i --force-confold /tmp/vrrpd.deb >/dev/null
grep -qxF '# edited by the operator' /etc/vrrpd/vrrpd.toml || fail "reinstalling lost the edit"
echo "ok: /etc/vrrpd/vrrpd.toml is a conffile; edits survive a reinstall"

for page in /usr/share/man/man8/vrrpd.8.gz /usr/share/man/man5/vrrpd.toml.5.gz; do
  warnings=$(MANWIDTH=80 man --warnings=w -l "$page" 2>&1 >/dev/null)
  [ -z "$warnings" ] || fail "groff warnings in $page: $warnings"
  MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q 'SEE ALSO' || fail "$page renders nothing"
done
[ "$(man -w vrrpd)" = /usr/share/man/man8/vrrpd.8.gz ] || fail "man vrrpd finds $(man -w vrrpd)"
[ "$(man -w vrrpd.toml)" = /usr/share/man/man5/vrrpd.toml.5.gz ] || fail "man vrrpd.toml"
echo "ok: man vrrpd and man vrrpd.toml render without warnings"

# systemd-analyze verify also runs `man` on each Documentation=man: page.
out=$(systemd-analyze verify /usr/lib/systemd/system/vrrpd.service 2>&1) ||
  fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify says: $out"
[ "$(systemctl is-enabled vrrpd 2>&1 || true)" = disabled ] ||
  fail "the unit is $(systemctl is-enabled vrrpd 2>&1) (installed, not enabled)"
echo "ok: systemd-analyze verify passes; the unit is installed and disabled"

# bash completes subcommands and their options from the installed file.
. /usr/share/bash-completion/completions/vrrpd
COMP_WORDS=(vrrpd ch); COMP_CWORD=1; COMP_LINE="vrrpd ch"; COMP_POINT=${#COMP_LINE}
_vrrpd vrrpd ch vrrpd
[[ " ${COMPREPLY[*]} " == *" check "* ]] || fail "bash completes 'vrrpd ch' to: ${COMPREPLY[*]}"
COMP_WORDS=(vrrpd check --con); COMP_CWORD=2; COMP_LINE="vrrpd check --con"; COMP_POINT=${#COMP_LINE}
_vrrpd vrrpd --con check
[[ " ${COMPREPLY[*]} " == *" --config "* ]] || fail "bash completes 'vrrpd check --con' to: ${COMPREPLY[*]}"
echo "ok: bash completion"

n=$(ls /usr/share/doc/vrrpd/examples/*.toml | wc -l)
[ "$n" -ge 5 ] || fail "$n examples"
for example in /usr/share/doc/vrrpd/examples/*.toml; do
  grep -q '^\[' "$example" || fail "$example"
done
zcat /usr/share/doc/vrrpd/changelog.Debian.gz | head -n 1 | grep -q '^vrrpd (' || fail changelog
grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' \
  /usr/share/doc/vrrpd/copyright || fail copyright
echo "ok: $n examples, changelog, copyright"

dpkg --purge vrrpd >/dev/null
for path in /usr/sbin/vrrpd /etc/vrrpd/vrrpd.toml /usr/lib/systemd/system/vrrpd.service; do
  [ ! -e "$path" ] || fail "$path is left after purge"
done
echo "ok: dpkg --purge removes it"
INNER
OUTER
stamp "package test passed"
