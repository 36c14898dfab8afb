#!/usr/bin/env bash
# Installs what the labs need that is not in the repo. Idempotent; fails loudly.
# VirtualBox lab: the VBoxManage simulator is plain Node, nothing to install.
# KVM lab: libvirt + QEMU (software emulation, no /dev/kvm) + OpenSSH server, without
# libvirt-daemon-system (it pulls systemd, polkit and firewall packages). Users, libvirtd.conf
# and the daemons are set up at test time by test/labs/kvm/lab.ts (ensureLibvirt).
# VMware lab: Go and Debian's govmomi library; test/labs/vcsim/build.sh builds vcsim from them.
# Hyper-V lab: real PowerShell 7.6.10 as a .NET tool in /opt/snapvisor/pwsh (machine-wide, so the
# non-root lab user can run it; ~/.dotnet/tools under /root is not reachable). Needs the .NET SDK.
# Web console: Debian's chromium for playwright-core.
# Azure lab: the ARM fake is plain Node; its HTTPS certificate is made at test start by openssl.
# PostgreSQL lab: Debian's postgresql server; test/labs/postgres/lab.ts runs its own clusters on
# loopback (as the package's `postgres` user), never the packaged service.
set -euo pipefail
need=()
command -v node >/dev/null || need+=(nodejs npm)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
command -v openssl >/dev/null || need+=(openssl)

kvm_packages=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils openssh-server)
vcsim_packages=(golang-go golang-github-vmware-govmomi-dev)
# Web console tests and the paint benchmark: Debian's Chromium, driven by playwright-core
# (Playwright's own browser download cannot reach its host here). fonts-dejavu-core gives the
# screenshots real glyphs (and the hostile names in the tests their emoji).
browser_packages=(chromium fonts-dejavu-core fonts-noto-color-emoji)
postgres_packages=(postgresql)
if ! command -v dpkg-query >/dev/null; then
  echo "provision: the KVM and VMware labs need a Debian/Ubuntu host (dpkg + apt) to install: ${kvm_packages[*]} ${vcsim_packages[*]}" >&2
  exit 1
fi
for pkg in "${kvm_packages[@]}" "${vcsim_packages[@]}" "${browser_packages[@]}" "${postgres_packages[@]}"; do
  # dpkg-query answers for installed packages in a few ms; "install ok installed" is the only good status.
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || need+=("$pkg")
done

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "provision: need root to install: ${need[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  echo "provision: installing ${need[*]}"
  # Several engineers/CI steps may run apt at once: wait for the dpkg lock instead of failing.
  if ! apt-get -o DPkg::Lock::Timeout=600 update -qq; then
    echo "provision: apt-get update failed" >&2; exit 1
  fi
  if ! apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}"; then
    echo "provision: apt-get install failed for: ${need[*]}" >&2; exit 1
  fi
fi

for cmd in virsh libvirtd virtlogd qemu-system-x86_64 qemu-img /usr/sbin/sshd ssh-keygen go openssl /usr/bin/chromium; do
  command -v "$cmd" >/dev/null || { echo "provision: $cmd is missing after install" >&2; exit 1; }
done
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || { echo "provision: the PostgreSQL server (/usr/lib/postgresql/*/bin/postgres) is missing after install" >&2; exit 1; }
id postgres >/dev/null 2>&1 || { echo "provision: the postgres user (made by the postgresql package) is missing" >&2; exit 1; }
# PowerShell for the Hyper-V lab (test/labs/hyperv). Without --version dotnet picks 7.7.0, which
# does not install here; 7.6.10 is the version the lab and its README were checked with.
PWSH_VERSION=7.6.10
PWSH_DIR=/opt/snapvisor/pwsh
pwsh_version() { "$PWSH_DIR/pwsh" -NoProfile -NonInteractive -Command '$PSVersionTable.PSVersion.ToString()' 2>/dev/null | tr -d '\r' || true; }
if [ "$(pwsh_version)" != "$PWSH_VERSION" ]; then
  command -v dotnet >/dev/null || { echo "provision: dotnet is missing: the Hyper-V lab installs PowerShell $PWSH_VERSION as a .NET tool; install the .NET SDK (https://learn.microsoft.com/dotnet/core/install/linux-debian)" >&2; exit 1; }
  if [ "$(id -u)" -ne 0 ]; then echo "provision: need root to install PowerShell into $PWSH_DIR" >&2; exit 1; fi
  mkdir -p "$(dirname "$PWSH_DIR")"
  if [ -e "$PWSH_DIR/pwsh" ]; then
    dotnet tool uninstall --tool-path "$PWSH_DIR" PowerShell >/dev/null 2>&1 || true
  fi
  echo "provision: installing PowerShell $PWSH_VERSION into $PWSH_DIR"
  if ! dotnet tool install --tool-path "$PWSH_DIR" PowerShell --version "$PWSH_VERSION"; then
    echo "provision: dotnet tool install PowerShell $PWSH_VERSION failed" >&2; exit 1
  fi
  chmod -R a+rX "$(dirname "$PWSH_DIR")"
  got=$(pwsh_version)
  [ "$got" = "$PWSH_VERSION" ] || { echo "provision: $PWSH_DIR/pwsh reports '$got', expected $PWSH_VERSION" >&2; exit 1; }
fi
# The lab user is not root: the apphost must find the runtime by itself (DOTNET_ROOT is set by the
# lab's shim too, but a bare pwsh must work). 'nobody' stands in for any unprivileged user.
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
  got=$(su -s /bin/sh nobody -c "HOME=/tmp DOTNET_ROOT=$(dirname "$(readlink -f "$(command -v dotnet)")") $PWSH_DIR/pwsh -NoProfile -NonInteractive -Command '\$PSVersionTable.PSVersion.ToString()'" 2>&1 | tr -d '\r' || true)
  [ "$got" = "$PWSH_VERSION" ] || { echo "provision: $PWSH_DIR/pwsh does not run for a non-root user: $got" >&2; exit 1; }
fi

echo "provision: ok"
