$vm = Get-SnapvisorVm $Params.vmId
$s = Find-SnapvisorCheckpoint $vm $Params.checkpointId
if (-not $s) { Stop-Snapvisor 'not_found' "VM $($vm.Id) has no checkpoint $($Params.checkpointId)" }
$vm = Wait-SnapvisorMerge $vm
# ConfirmImpact High: under -NonInteractive anything but -Confirm:$false is an error.
Hyper-V\Restore-VMSnapshot -VMSnapshot $s -Confirm:$false
Out-Snapvisor @{ vm = ConvertTo-SnapvisorVm (Hyper-V\Get-VM -Id $vm.Id) }
