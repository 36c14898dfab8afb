# Remove-VMSnapshot of something that is not there succeeds silently, so the checkpoint is looked up
# by Id first; an absent one is reported, not an error (delete is idempotent).
$vm = Get-SnapvisorVm $Params.vmId
if ($Params.all) { $targets = @(Hyper-V\Get-VMSnapshot -VM $vm) } else { $targets = @(Find-SnapvisorCheckpoint $vm $Params.checkpointId) }
if ($targets.Count -eq 0) { Out-Snapvisor @{ removed = 0 } }
$vm = Wait-SnapvisorMerge $vm
if ($Params.children -or $Params.all) { Hyper-V\Remove-VMSnapshot -VMSnapshot $targets -IncludeAllChildSnapshots -Confirm:$false }
else { Hyper-V\Remove-VMSnapshot -VMSnapshot $targets -Confirm:$false }
Out-Snapvisor @{ removed = $targets.Count }
