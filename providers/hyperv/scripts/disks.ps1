# The VM's merge state and the .avhdx files beside its disks that no chain uses (orphans): every
# chain is walked from the VM's drives and each checkpoint's drives up through Get-VHD ParentPath.
$vm = Get-SnapvisorVm $Params.vmId
$used = New-Object 'System.Collections.Generic.HashSet[string]' ([StringComparer]::OrdinalIgnoreCase)
$dirs = New-Object 'System.Collections.Generic.HashSet[string]' ([StringComparer]::OrdinalIgnoreCase)
$drives = @(Hyper-V\Get-VMHardDiskDrive -VM $vm) + @(Hyper-V\Get-VMSnapshot -VM $vm | ForEach-Object { Hyper-V\Get-VMHardDiskDrive -VMSnapshot $_ })
foreach ($d in $drives) {
  $path = [string]$d.Path
  while ($path -and $used.Add($path)) {
    $null = $dirs.Add((Split-Path -Parent $path))
    $path = [string](Hyper-V\Get-VHD -Path $path).ParentPath
  }
}
$orphans = @(foreach ($dir in $dirs) { Get-ChildItem -LiteralPath $dir -Filter '*.avhdx' -File | Where-Object { -not $used.Contains($_.FullName) } | ForEach-Object { $_.FullName } })
Out-Snapvisor @{ vm = ConvertTo-SnapvisorVm $vm; orphans = $orphans }
