#!/usr/bin/env bash
# Installs the Debian servers that escale's storage tests run against
# (pkg/storage/testserver): vsftpd, pure-ftpd, OpenSSH's sshd and apache2.
#
# The tests start their own instances on 127.0.0.1 with configs in temp
# folders, so this script makes sure the system services of packages it
# installs are neither left running nor enabled. Services of packages that
# were already installed are left alone: stopping an sshd someone logged in
# through would lock them out.
#
# vsftpd and pure-ftpd conflict in dpkg (both provide ftp-server), so the one
# not installed is unpacked from its Debian package into $EXTRACT_ROOT/<pkg>
# (its libraries are installed normally). testserver looks there too.
#
# Idempotent; runs as root, non-interactively, on Debian 12.
set -euo pipefail

EXTRACT_ROOT=/opt/escale-test-servers

if [ "$(id -u)" -ne 0 ]; then
	echo "install-test-servers.sh: run as root (it calls apt-get)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

# Which FTP server dpkg owns; the other one is unpacked.
if installed pure-ftpd; then
	ftp_pkg=pure-ftpd
	extract=(vsftpd)
	extract_libs=(libcap2 libpam0g libssl3 libwrap0)
else
	ftp_pkg=vsftpd
	extract=(pure-ftpd pure-ftpd-common)
	extract_libs=(libcap2 libcrypt1 libpam0g libsodium23 libssl3)
fi
packages=("$ftp_pkg" openssh-server apache2 "${extract_libs[@]}")
# The services each server package ships, to stop and disable after install.
declare -A services=([vsftpd]=vsftpd [pure-ftpd]=pure-ftpd [openssh-server]="ssh ssh.socket"
	[apache2]="apache2 apache-htcacheclean")

# vsftpd's anonymous sessions run as user ftp, entering its home first; the
# vsftpd package creates both, so an unpacked vsftpd needs them made here.
if [ "${extract[0]}" = vsftpd ]; then
	id ftp >/dev/null 2>&1 ||
		useradd --system --user-group --home-dir /srv/ftp --no-create-home --shell /usr/sbin/nologin ftp
	mkdir -p /srv/ftp
fi

missing=()
for p in "${packages[@]}"; do
	installed "$p" || missing+=("$p")
done
unpacked() { [ -x "$EXTRACT_ROOT/${extract[0]}/usr/sbin/${extract[0]}" ]; }

if [ ${#missing[@]} -eq 0 ] && unpacked; then
	echo "install-test-servers.sh: test servers already installed"
	exit 0
fi

# Something must be installed: refresh the package lists first, since a
# fresh machine's lists may be missing or point at versions long gone.
apt-get update

if [ ${#missing[@]} -gt 0 ]; then
	# Keep maintainer scripts from starting the services while installing:
	# invoke-rc.d and deb-systemd-invoke both obey policy-rc.d's exit 101.
	# Only a policy we put there is removed again.
	policy=/usr/sbin/policy-rc.d
	own_policy=false
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		own_policy=true
	fi
	trap 'if $own_policy; then rm -f "$policy"; fi' EXIT
	apt-get install -y --no-install-recommends "${missing[@]}"

	# Belt and braces, for machines where a service got started or enabled anyway.
	for p in "${missing[@]}"; do
		for s in ${services[$p]:-}; do
			if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
				systemctl disable --now "$s" >/dev/null 2>&1 || true
			elif [ -x "/etc/init.d/$s" ]; then
				"/etc/init.d/$s" stop >/dev/null 2>&1 || true
			fi
			if [ -e "/etc/init.d/$s" ]; then
				update-rc.d "$s" disable >/dev/null 2>&1 || true
			fi
		done
	done
fi

if ! unpacked; then
	work=$(mktemp -d)
	trap 'rm -rf "$work"; if ${own_policy:-false}; then rm -f "$policy"; fi' EXIT
	# apt downloads as its sandbox user, who must be able to write here.
	if id _apt >/dev/null 2>&1; then chown _apt "$work"; fi
	(cd "$work" && apt-get download "${extract[@]}")
	dest="$EXTRACT_ROOT/${extract[0]}"
	rm -rf "$dest"
	mkdir -p "$dest"
	for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$dest"; done
	# Nothing here is a service: no init script, unit or config is active.
	if ldd "$dest/usr/sbin/${extract[0]}" | grep -q 'not found'; then
		echo "install-test-servers.sh: $dest/usr/sbin/${extract[0]} lacks libraries:" >&2
		ldd "$dest/usr/sbin/${extract[0]}" | grep 'not found' >&2
		exit 1
	fi
fi
echo "install-test-servers.sh: $ftp_pkg, openssh-server, apache2 installed (services stopped and disabled); ${extract[0]} unpacked in $EXTRACT_ROOT/${extract[0]}"
