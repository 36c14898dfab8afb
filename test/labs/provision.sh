#!/usr/bin/env bash
# Installs what the labs need that is not in the repo. Idempotent; fails loudly.
# VirtualBox lab: the VBoxManage simulator is plain Node, nothing to install.
# KVM lab: libvirt + QEMU (software emulation, no /dev/kvm) + OpenSSH server, without
# libvirt-daemon-system (it pulls systemd, polkit and firewall packages). Users, libvirtd.conf
# and the daemons are set up at test time by test/labs/kvm/lab.ts (ensureLibvirt).
# VMware lab: Go and Debian's govmomi library; test/labs/vcsim/build.sh builds vcsim from them.
set -euo pipefail
need=()
command -v node >/dev/null || need+=(nodejs npm)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)

kvm_packages=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils openssh-server)
vcsim_packages=(golang-go golang-github-vmware-govmomi-dev)
if ! command -v dpkg-query >/dev/null; then
  echo "provision: the KVM and VMware labs need a Debian/Ubuntu host (dpkg + apt) to install: ${kvm_packages[*]} ${vcsim_packages[*]}" >&2
  exit 1
fi
for pkg in "${kvm_packages[@]}" "${vcsim_packages[@]}"; do
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

for cmd in virsh libvirtd virtlogd qemu-system-x86_64 qemu-img /usr/sbin/sshd ssh-keygen go; do
  command -v "$cmd" >/dev/null || { echo "provision: $cmd is missing after install" >&2; exit 1; }
done
echo "provision: ok"
