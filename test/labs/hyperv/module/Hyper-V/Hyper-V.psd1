# Hyper-V simulator (Snapvisor lab, test/labs/hyperv/README.md) — NOT Microsoft's module.
# Explicit export lists keep command discovery/autoloading cheap (no module import to analyse it).
@{
    RootModule        = 'Hyper-V.psm1'
    ModuleVersion     = '2.0.0.0'
    GUID              = 'af4bddd0-8583-4ff2-84b2-a33f5c8de8a7'
    Author            = 'Snapvisor lab'
    Description       = 'Simulated Hyper-V cmdlets for the Snapvisor test lab (state in $env:HYPERV_SIM_STATE).'
    PowerShellVersion = '7.0'
    FunctionsToExport = @('Get-VM', 'Get-VMSnapshot', 'Checkpoint-VM', 'Restore-VMSnapshot', 'Remove-VMSnapshot',
        'Stop-VM', 'Start-VM', 'Save-VM', 'Suspend-VM', 'Resume-VM', 'Set-VM', 'Get-VMHardDiskDrive', 'Get-VHD')
    CmdletsToExport   = @()
    VariablesToExport = @()
    AliasesToExport   = @('Get-VMCheckpoint', 'Restore-VMCheckpoint', 'Remove-VMCheckpoint')
}
