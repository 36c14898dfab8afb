#!/usr/bin/env bash
# Re-captures test/fixtures/kvm/* from the real local libvirt (as root; libvirtd must be up — see
# test/labs/kvm/lab.ts ensureLibvirt). Output is stored verbatim; INDEX.tsv records command and exit code.
# Uses throwaway domains cap-web01 (agent channel, internal snapshots), cap-db01 (no agent, external
# snapshots) and cap-off01 (shut off), disks under /tmp/kvmcap. Usage: bash test/labs/kvm/capture-fixtures.sh
set -uo pipefail
[ "$(id -u)" -eq 0 ] || { echo "capture: run as root" >&2; exit 1; }
export LC_ALL=C
out="$(cd "$(dirname "$0")/../../fixtures/kvm" && pwd)"
work=/tmp/kvmcap
V=(virsh -c qemu:///system)
index="$out/INDEX.tsv"

for d in cap-web01 cap-db01 cap-off01; do "${V[@]}" destroy "$d" >/dev/null 2>&1; "${V[@]}" undefine "$d" --snapshots-metadata >/dev/null 2>&1; done
rm -rf "$work"; mkdir -p "$work"; chmod 755 "$work"
printf 'file\texit\tstream\tcommand\n' > "$index"

# cap FILE STREAM(stdout|stderr) virsh-args...
cap() {
  local file=$1 stream=$2; shift 2
  local o e rc
  o=$(mktemp); e=$(mktemp)
  "${V[@]}" "$@" >"$o" 2>"$e"; rc=$?
  if [ "$stream" = stdout ]; then cp "$o" "$out/$file"; else cp "$e" "$out/$file"; fi
  # The command column is shell-quoted (printf %q), so multi-line arguments stay on one line.
  printf '%s\t%s\t%s\tvirsh -c qemu:///system' "$file" "$rc" "$stream" >> "$index"
  printf ' %q' "$@" >> "$index"
  printf '\n' >> "$index"
  rm -f "$o" "$e"
}

mkdom() { # name uuid agent(yes|no)
  qemu-img create -q -f qcow2 "$work/$1.qcow2" 16M
  local ch=''
  [ "$3" = yes ] && ch="<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
  cat > "$work/$1.xml" <<XML
<domain type='qemu'>
  <name>$1</name>
  <uuid>$2</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$work/$1.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <controller type='usb' model='none'/>
    $ch
    <memballoon model='none'/>
  </devices>
</domain>
XML
  "${V[@]}" define "$work/$1.xml" >/dev/null
}

mkdom cap-web01 6f1c2a9e-0b7d-4c1e-9a55-3d2f0e8b1a01 yes
mkdom cap-db01 6f1c2a9e-0b7d-4c1e-9a55-3d2f0e8b1a02 no
mkdom cap-off01 6f1c2a9e-0b7d-4c1e-9a55-3d2f0e8b1a03 no
"${V[@]}" start cap-web01 >/dev/null; "${V[@]}" start cap-db01 >/dev/null

cap version.txt stdout version
cap domstate-running.txt stdout domstate cap-web01
cap domstate-running-reason.txt stdout domstate cap-web01 --reason
cap domstate-shutoff.txt stdout domstate cap-off01
cap domstate-shutoff-reason.txt stdout domstate cap-off01 --reason
cap dumpxml-plain.xml stdout dumpxml cap-web01
cap dumpxml-shutoff.xml stdout dumpxml cap-off01
cap snapshot-list-empty.txt stdout snapshot-list cap-web01 --name
cap snapshot-current-none.stderr stderr snapshot-current cap-web01 --name
cap list-all-name.txt stdout list --all --name
cap list-all-uuid.txt stdout list --all --uuid

# Internal snapshots with memory of a running domain.
cap snapshot-create-internal.txt stdout snapshot-create-as cap-web01 base --description 'first snapshot'
cap snapshot-dumpxml-internal-running.xml stdout snapshot-dumpxml cap-web01 base
desc=$'Before upgrade <b>&amp;</b> "quoted" \'single\' & <tag/>\nzweite Zeile: ünïcødé ✓ 日本語 🚀\n  indented line with trailing spaces   \n\nsnapvisor:job-0123'
cap snapshot-create-description.txt stdout snapshot-create-as cap-web01 'with desc' --description "$desc"
cap snapshot-dumpxml-description.xml stdout snapshot-dumpxml cap-web01 'with desc'
cap snapshot-create-numeric-like.txt stdout snapshot-create-as cap-web01 1e3 --description 007
cap snapshot-dumpxml-numeric-like.xml stdout snapshot-dumpxml cap-web01 1e3
cap snapshot-create-special-name.txt stdout snapshot-create-as cap-web01 $'  a&b <c> "d" \'e\' ' --description $'tab\there\r\ncrlf  '
cap snapshot-dumpxml-special-name.xml stdout snapshot-dumpxml cap-web01 $'  a&b <c> "d" \'e\' '
"${V[@]}" snapshot-revert cap-web01 base >/dev/null
cap snapshot-create-branch.txt stdout snapshot-create-as cap-web01 "branch 'b' \$(x);ü"
cap snapshot-list-name.txt stdout snapshot-list cap-web01 --name
cap snapshot-list-parent.txt stdout snapshot-list cap-web01 --parent
cap snapshot-list-tree.txt stdout snapshot-list cap-web01 --tree
cap snapshot-list-roots.txt stdout snapshot-list cap-web01 --roots --name
cap snapshot-list-table.txt stdout snapshot-list cap-web01
# Under LC_ALL=C the table mangles non-ASCII names; under C.UTF-8 it does not (--name is fine in both).
LC_ALL=C.UTF-8 cap snapshot-list-parent-utf8.txt stdout snapshot-list cap-web01 --parent
cap snapshot-current-name.txt stdout snapshot-current cap-web01 --name
cap snapshot-parent.txt stdout snapshot-parent cap-web01 'with desc'
cap snapshot-parent-root.stderr stderr snapshot-parent cap-web01 base

# Paused.
"${V[@]}" suspend cap-web01 >/dev/null
cap domstate-paused.txt stdout domstate cap-web01
cap domstate-paused-reason.txt stdout domstate cap-web01 --reason
cap snapshot-create-internal-paused.txt stdout snapshot-create-as cap-web01 paused-snap
cap snapshot-dumpxml-internal-paused.xml stdout snapshot-dumpxml cap-web01 paused-snap
"${V[@]}" resume cap-web01 >/dev/null

# Offline internal snapshot.
cap snapshot-create-internal-shutoff.txt stdout snapshot-create-as cap-off01 cold
cap snapshot-dumpxml-internal-shutoff.xml stdout snapshot-dumpxml cap-off01 cold

# External disk-only chain on a running domain without agent channel.
cap snapshot-create-external.txt stdout snapshot-create-as cap-db01 ext1 --disk-only --atomic
cap snapshot-dumpxml-external-disk-only.xml stdout snapshot-dumpxml cap-db01 ext1
cap snapshot-create-external2.txt stdout snapshot-create-as cap-db01 ext2 --disk-only --atomic
cap dumpxml-after-external.xml stdout dumpxml cap-db01
cap dumpxml-after-external-inactive.xml stdout dumpxml cap-db01 --inactive
cap domblklist-details.txt stdout domblklist cap-db01 --details
cap snapshot-create-external-memory.txt stdout snapshot-create-as cap-db01 extmem --memspec "file=$work/cap-db01.extmem.mem,snapshot=external" --diskspec vda,snapshot=external --atomic
cap snapshot-dumpxml-external-memory.xml stdout snapshot-dumpxml cap-db01 extmem
cap snapshot-list-external-parent.txt stdout snapshot-list cap-db01 --parent

# Errors.
cap error-unknown-domain.stderr stderr domstate no-such-domain
cap error-unknown-domain-snapshot-list.stderr stderr snapshot-list no-such-domain --name
cap error-unknown-snapshot.stderr stderr snapshot-dumpxml cap-web01 no-such-snapshot
cap error-unknown-snapshot-revert.stderr stderr snapshot-revert cap-web01 no-such-snapshot
cap error-duplicate-name.stderr stderr snapshot-create-as cap-web01 base
cap error-slash-name.stderr stderr snapshot-create-as cap-web01 a/b
cap error-quiesce-no-channel.stderr stderr snapshot-create-as cap-db01 q1 --disk-only --atomic --quiesce
cap error-quiesce-agent-not-running.stderr stderr snapshot-create-as cap-web01 q2 --disk-only --atomic --quiesce
cap error-revert-external.stderr stderr snapshot-revert cap-db01 ext1
cap error-delete-external-with-children.stderr stderr snapshot-delete cap-db01 ext1 --children
cap error-memory-offline.stderr stderr snapshot-create-as cap-off01 m1 --memspec "file=$work/m1.mem,snapshot=external" --diskspec vda,snapshot=external

# Success messages for delete (an external snapshot in the middle of a linear chain is committed, exit 0).
cap snapshot-delete-external-middle.txt stdout snapshot-delete cap-db01 ext1
cap snapshot-list-external-after-delete.txt stdout snapshot-list cap-db01 --parent
cap dumpxml-after-external-delete.xml stdout dumpxml cap-db01
cap snapshot-delete-internal.txt stdout snapshot-delete cap-web01 paused-snap
cap snapshot-revert-internal.txt stdout snapshot-revert cap-web01 base
cap domstate-after-revert.txt stdout domstate cap-web01

for d in cap-web01 cap-db01 cap-off01; do "${V[@]}" destroy "$d" >/dev/null 2>&1; "${V[@]}" undefine "$d" --snapshots-metadata >/dev/null 2>&1; done
rm -rf "$work"
echo "capture: wrote $(($(wc -l < "$index") - 1)) fixtures to $out"
