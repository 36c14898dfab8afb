# The offline sequence's steps (providers/shared/offline.ts), one per call.
$vm = Get-SnapvisorVm $Params.vmId
switch ($Params.action) {
  'read' { }
  'shutdown' {
    # A guest shutdown through the integration services; -Force: no prompt about unsaved data.
    try { Hyper-V\Stop-VM -VM $vm -Force } catch { Out-Snapvisor @{ unable = $_.Exception.Message; vm = ConvertTo-SnapvisorVm (Hyper-V\Get-VM -Id $vm.Id) } }
  }
  'turnoff' { Hyper-V\Stop-VM -VM $vm -TurnOff -Force }
  'start' { Hyper-V\Start-VM -VM $vm }
  default { Stop-Snapvisor 'internal' "unknown power action '$($Params.action)'" }
}
Out-Snapvisor @{ vm = ConvertTo-SnapvisorVm (Hyper-V\Get-VM -Id $vm.Id) }
