# Every VM with its disks and its whole checkpoint list: the engine's sync in one call.
$vms = @(Hyper-V\Get-VM | ForEach-Object {
  $vm = $_
  [ordered]@{ vm = ConvertTo-SnapvisorVm $vm
    drives = @(Hyper-V\Get-VMHardDiskDrive -VM $vm | ForEach-Object { [ordered]@{ Path = [string]$_.Path; ControllerType = [int]$_.ControllerType; ControllerNumber = [int]$_.ControllerNumber; ControllerLocation = [int]$_.ControllerLocation } })
    checkpoints = @(Hyper-V\Get-VMSnapshot -VM $vm | ForEach-Object { ConvertTo-SnapvisorCheckpoint $_ }) }
})
Out-Snapvisor $vms
