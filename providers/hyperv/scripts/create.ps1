# Looks for the job's marker first (a retried or recovered job finds what it made), then makes the
# checkpoint with the type the mode needs; in mode offline only once the VM is off. A checkpoint copies the VM's Notes: they carry the
# description and the marker for the call and are put back after it, as is the checkpoint type.
$vm = Get-SnapvisorVm $Params.vmId
$marker = [string]$Params.marker
$mine = { param($s) $n = [string]$s.Notes; $n -ceq $marker -or $n.EndsWith("`n" + $marker) }
$found = @(Hyper-V\Get-VMSnapshot -VM $vm) | Where-Object { & $mine $_ } | Select-Object -First 1
if ($found) { Out-Snapvisor @{ checkpoint = ConvertTo-SnapvisorCheckpoint $found; vm = ConvertTo-SnapvisorVm $vm; existed = $true } }
$state = [string]$vm.State
switch ($Params.mode) {
  'memory' { if ($state -notin 'Running', 'Paused') { Stop-Snapvisor 'conflict' "a memory checkpoint of VM $($vm.Id) needs it running (state: $state); use mode 'offline' for a VM that is not running" }; $type = 'Standard' }
  'quiesced' { if ($state -notin 'Running', 'Off') { Stop-Snapvisor 'conflict' "a production checkpoint of VM $($vm.Id) needs it running or off (state: $state)" }; $type = 'ProductionOnly' }
  # Not off yet: the VM is the answer (no checkpoint); the adapter shuts it down and calls again.
  'offline' { if ($state -ne 'Off') { Out-Snapvisor @{ vm = ConvertTo-SnapvisorVm $vm } }; $type = 'Standard' }
  default { Stop-Snapvisor 'unsupported' "mode '$($Params.mode)' is not supported by Hyper-V" }
}
$vm = Wait-SnapvisorMerge $vm
# Notes ending in a marker line are ours, left by a call that was killed: not the user's.
$oldNotes = ([string]$vm.Notes) -replace "(\r?\n)*snapvisor:\S+$", ''
$oldType = $vm.CheckpointType
try {
  Hyper-V\Set-VM -VM $vm -CheckpointType $type -Notes ([string]$Params.notes)
  Hyper-V\Checkpoint-VM -VM $vm -SnapshotName ([string]$Params.name)
} catch {
  if ($type -eq 'ProductionOnly' -and [string]$_.FullyQualifiedErrorId -notlike 'ObjectNotFound*') {
    Stop-Snapvisor 'conflict' "a production (quiesced) checkpoint of VM $($vm.Id) failed, and no standard checkpoint was made instead: $($_.Exception.Message)"
  }
  throw
} finally {
  Hyper-V\Set-VM -VM $vm -CheckpointType $oldType -Notes $oldNotes
}
$made = @(Hyper-V\Get-VMSnapshot -VM $vm) | Where-Object { & $mine $_ } | Select-Object -First 1
if (-not $made) { Stop-Snapvisor 'internal' "Checkpoint-VM returned but VM $($vm.Id) has no checkpoint with marker $marker" }
Out-Snapvisor @{ checkpoint = ConvertTo-SnapvisorCheckpoint $made; vm = ConvertTo-SnapvisorVm (Hyper-V\Get-VM -Id $vm.Id); existed = $false }
