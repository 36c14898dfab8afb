#!/usr/bin/env bash
# Installs what the labs need that is not in the repo. Idempotent; fails loudly.
# VirtualBox lab: the VBoxManage simulator is plain Node, nothing to install.
set -euo pipefail
need=()
command -v node >/dev/null || need+=(nodejs npm)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
command -v python3 >/dev/null || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "provision: need root to install: ${need[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
echo "provision: ok"
