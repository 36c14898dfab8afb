$vm = Get-SnapvisorVm $Params.vmId
Out-Snapvisor ([ordered]@{ vm = ConvertTo-SnapvisorVm $vm; checkpoints = @(Hyper-V\Get-VMSnapshot -VM $vm | ForEach-Object { ConvertTo-SnapvisorCheckpoint $_ }) })
