# Prepended to every Snapvisor Hyper-V script (providers/hyperv/scripts.ts). Runs under the
# encoding's preamble: $ErrorActionPreference = 'Stop', $Params holds the request's data.
# Output protocol, on stdout: exactly one line '##snapvisor-result <json>' and exit 0; or one line
# '##snapvisor-error <json>' and exit 1 (a cmdlet failed: its FullyQualifiedErrorId and category)
# or exit 2 (a refusal of our own, with its kind). A script that ends without either line failed.
function Out-Snapvisor($Value) {
  [Console]::Out.WriteLine('##snapvisor-result ' + (ConvertTo-Json -InputObject $Value -Compress -Depth 8))
  exit 0
}
function Stop-Snapvisor([string]$Kind, [string]$Message) {
  [Console]::Out.WriteLine('##snapvisor-error ' + (ConvertTo-Json -InputObject @{ kind = $Kind; message = $Message } -Compress))
  exit 2
}
function Write-SnapvisorFailure($Record) {
  $e = @{ message = $Record.Exception.Message; fullyQualifiedErrorId = [string]$Record.FullyQualifiedErrorId
    category = [string]$Record.CategoryInfo.Category; exceptionType = $Record.Exception.GetType().FullName }
  [Console]::Out.WriteLine('##snapvisor-error ' + (ConvertTo-Json -InputObject $e -Compress))
  exit 1
}
# Enums as integers and dates in UTC: the same JSON from Windows PowerShell 5.1 and PowerShell 7.
function ConvertTo-SnapvisorVm($Vm) {
  [ordered]@{ Name = $Vm.Name; Id = $Vm.Id.ToString(); State = [int]$Vm.State; Status = [string]$Vm.Status
    OperationalStatus = @($Vm.OperationalStatus | ForEach-Object { [int]$_ }); CheckpointType = [int]$Vm.CheckpointType
    ParentSnapshotId = $(if ($Vm.ParentSnapshotId) { $Vm.ParentSnapshotId.ToString() } else { $null }); Notes = [string]$Vm.Notes }
}
function ConvertTo-SnapvisorCheckpoint($S) {
  [ordered]@{ Id = $S.Id.ToString(); Name = $S.Name; VMId = $S.VMId.ToString(); VMName = $S.VMName
    ParentSnapshotId = $(if ($S.ParentSnapshotId) { $S.ParentSnapshotId.ToString() } else { $null })
    SnapshotType = [int]$S.SnapshotType; State = [int]$S.State; CreationTime = $S.CreationTime.ToUniversalTime()
    Notes = [string]$S.Notes; IsAutomaticCheckpoint = [bool]$S.IsAutomaticCheckpoint }
}
function Get-SnapvisorVm([string]$Id) {
  try { $vm = Hyper-V\Get-VM -Id $Id } catch {
    if ([string]$_.CategoryInfo.Category -in 'ObjectNotFound', 'InvalidArgument') { Stop-Snapvisor 'not_found' "no Hyper-V VM with id $Id" }
    throw
  }
  if (-not $vm) { Stop-Snapvisor 'not_found' "no Hyper-V VM with id $Id" }
  $vm
}
# By Id among the VM's own checkpoints: never by name (names are wildcards and need not be unique).
function Find-SnapvisorCheckpoint($Vm, [string]$Id) {
  @(Hyper-V\Get-VMSnapshot -VM $Vm) | Where-Object { $_.Id.ToString() -eq $Id } | Select-Object -First 1
}
function Test-SnapvisorMerging($Vm) {
  (@($Vm.OperationalStatus | ForEach-Object { [int]$_ }) -contains 32772) -or ([string]$Vm.Status -like 'Merging disks*')
}
# A checkpoint, revert or removal waits for the previous removal's disk merge to end.
function Wait-SnapvisorMerge($Vm) {
  $until = [DateTime]::UtcNow.AddMilliseconds([int]$Params.mergeWaitMs)
  while (Test-SnapvisorMerging $Vm) {
    if ([DateTime]::UtcNow -ge $until) { Stop-Snapvisor 'transient' "the disks of VM $($Vm.Id) are still merging after a checkpoint removal; try again later" }
    Start-Sleep -Milliseconds 250
    $Vm = Hyper-V\Get-VM -Id $Vm.Id
  }
  $Vm
}
