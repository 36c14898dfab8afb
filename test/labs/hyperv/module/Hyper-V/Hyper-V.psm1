# Hyper-V simulator for the Snapvisor lab (test/labs/hyperv/README.md). Behaviour follows
# /work/shared/reference/hyperv.md; section numbers (§) below point there. Everything the reference
# marks UNKNOWN/UNVERIFIED and this file had to make up is tagged INVENTED.
#
# State: one JSON file ($env:HYPERV_SIM_STATE), read-modify-written under an exclusive lock on
# "<state>.lock" (flock; several commands run at once). Times are ISO-8601 UTC strings.

# No module-wide $ErrorActionPreference = 'Stop': the cmdlets' WriteError would read it (the
# module scope is their parent) and turn Hyper-V's non-terminating per-operand errors (§2.4) into
# terminating ones, whatever the caller's preference. .NET exceptions in here stop anyway.
Set-StrictMode -Off

if (-not ('Microsoft.HyperV.PowerShell.VMState' -as [type])) {
    $dll = [System.IO.Path]::Combine($PSScriptRoot, 'HyperVSim.dll')
    if ([System.IO.File]::Exists($dll)) {
        $null = [System.Reflection.Assembly]::LoadFrom($dll)
    } else {
        # Slow path (a few seconds): the lab normally compiles the DLL once.
        Add-Type -TypeDefinition ([System.IO.File]::ReadAllText([System.IO.Path]::Combine($PSScriptRoot, 'HyperVSim.cs')))
    }
}

$script:Inv = [System.Globalization.CultureInfo]::InvariantCulture
$script:ComputerName = [System.Environment]::MachineName

# ---------------------------------------------------------------------------------------------
# State

function Open-SimState {
    $path = $env:HYPERV_SIM_STATE
    if (-not $path) { throw 'Hyper-V simulator: HYPERV_SIM_STATE is not set (run through the lab''s powershell shim)' }
    $lock = [Snapvisor.HyperVSim.Support]::AcquireLock($path + '.lock', 60000)
    try {
        $text = [System.IO.File]::ReadAllText($path)
        $state = [Snapvisor.HyperVSim.Support]::ParseJson($text)
        $state.vms = @($state.vms)
        $state.snapshots = @($state.snapshots)
        $state.merges = @($state.merges)
        if ($null -eq $state.vhds) { $state.vhds = @{} }
        if ($null -eq $state.knobs) { $state.knobs = @{} }
        $dirty = Complete-Merges $state
    } catch {
        $lock.Dispose()
        throw
    }
    @{ Lock = $lock; State = $state; Path = $path; Dirty = [bool]$dirty }
}

# Read-only cmdlets write the state back only when a finished merge changed it.
function Save-SimStateIfDirty($handle) { if ($handle.Dirty) { Save-SimState $handle } }

function Save-SimState($handle) {
    $json = [Snapvisor.HyperVSim.Support]::ToJson($handle.State)
    [Snapvisor.HyperVSim.Support]::WriteAtomic($handle.Path, $json)
}

function Close-SimState($handle) { if ($handle) { $handle.Lock.Dispose() } }

function Get-Knob($state, [string]$name, [int]$default) {
    $v = $state.knobs[$name]
    if ($null -eq $v) { return $default }
    [int]$v
}

function Get-NowIso { [datetime]::UtcNow.ToString('o', $script:Inv) }
function ConvertFrom-Iso([string]$s) { [Snapvisor.HyperVSim.Support]::ParseUtc($s) }

# A merge whose time is up: the merged .avhdx file goes away (§2.4: Remove merges the .avhdx into its parent).
function Complete-Merges($state) {
    if ($state.merges.Count -eq 0) { return $false }
    $now = [datetime]::UtcNow
    $left = @()
    foreach ($m in $state.merges) {
        if ((ConvertFrom-Iso $m.until) -le $now) {
            if ($m.deletePath) {
                $state.vhds.Remove($m.deletePath)
                if ([System.IO.File]::Exists($m.deletePath)) { [System.IO.File]::Delete($m.deletePath) }
            }
        } else {
            $left += , $m
        }
    }
    $changed = $left.Count -ne $state.merges.Count
    $state.merges = $left
    $changed
}

function Test-Merging($state, [string]$vmId) {
    $now = [datetime]::UtcNow
    foreach ($m in $state.merges) { if ($m.vmId -eq $vmId -and (ConvertFrom-Iso $m.until) -gt $now) { return $true } }
    $false
}

function Find-SimVM($state, [string]$id) { foreach ($v in $state.vms) { if ($v.id -eq $id) { return $v } } }
function Find-SimSnapshot($state, [string]$id) { foreach ($s in $state.snapshots) { if ($s.id -eq $id) { return $s } } }

function Get-VMSnapshotsOf($state, [string]$vmId) {
    # Sorted by CreationTime (§2.2); ISO-8601 UTC strings with 7 fraction digits sort as text.
    # The sort is stable, so checkpoints made in the same tick keep their creation order.
    $mine = [System.Collections.Generic.List[object]]::new()
    foreach ($s in $state.snapshots) { if ($s.vmId -eq $vmId) { $mine.Add($s) } }
    [Snapvisor.HyperVSim.Support]::SortBy($mine.ToArray(), 'created')
}

# ---------------------------------------------------------------------------------------------
# Errors

function New-HvError([string]$message, [string]$fqid, [System.Management.Automation.ErrorCategory]$category, $target) {
    [Snapvisor.HyperVSim.Support]::NewError($message, $fqid, $category, $target)
}

function Get-CommandTypeName([string]$cmdName) {
    # Implementing type of the real cmdlet: Get-VMSnapshot -> Microsoft.HyperV.PowerShell.Commands.GetVMSnapshot
    if ($cmdName -eq 'Get-VHD') { return 'Microsoft.Vhd.PowerShell.Cmdlets.GetVHD' }
    'Microsoft.HyperV.PowerShell.Commands.' + ($cmdName -replace '-', '')
}

function New-SnapshotNotFound([string]$cmdName) {
    # §2.2 (obs): text, ObjectNotFound, target null ⇒ "(:)".
    New-HvError 'Unable to find a snapshot matching the given criteria.' ('ObjectNotFound,' + (Get-CommandTypeName $cmdName)) ObjectNotFound $null
}

function New-VMNotFound([string]$cmdName, [string]$name) {
    # §2.6 (obs): Get-VM → InvalidArgument, FQID InvalidParameter,…GetVM, target = the name string;
    # Stop-VM/Remove-VM → ObjectNotFound, target null. Other cmdlets: INVENTED (ObjectNotFound like Stop-VM).
    $message = "Hyper-V was unable to find a virtual machine with name `"$name`"."
    if ($cmdName -eq 'Get-VM') {
        New-HvError $message 'InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM' InvalidArgument $name
    } else {
        New-HvError $message ('ObjectNotFound,' + (Get-CommandTypeName $cmdName)) ObjectNotFound $null
    }
}

function New-OperationFailed([string]$cmdName, [string]$message) {
    # INVENTED: FQID and category of Hyper-V operation failures are not in the reference.
    New-HvError $message ('OperationFailed,' + (Get-CommandTypeName $cmdName)) InvalidOperation $null
}

function Format-Upper([string]$guid) { $guid.ToUpperInvariant() }

# ---------------------------------------------------------------------------------------------
# Objects (PSCustomObjects with real .NET property types and the real type names)

function Get-SnapshotName($state, $id) {
    if (-not $id) { return $null }
    $p = Find-SimSnapshot $state $id
    if ($p) { $p.name }
}

# The objects themselves are built in C# (HyperVSim.cs: NewVM/NewSnapshot/NewDrive/NewVhd).
function ConvertTo-VMObject($state, $vm) {
    [Snapvisor.HyperVSim.Support]::NewVM($vm, (Test-Merging $state $vm.id), (Get-SnapshotName $state $vm.parentSnapshotId), $script:ComputerName)
}

function ConvertTo-SnapshotObject($state, $snap) {
    [Snapvisor.HyperVSim.Support]::NewSnapshot($snap, (Find-SimVM $state $snap.vmId), (Get-SnapshotName $state $snap.parentId), $script:ComputerName)
}

function ConvertTo-DriveObject($vm, $disk, $snap) {
    [Snapvisor.HyperVSim.Support]::NewDrive($vm, $disk, $snap, $script:ComputerName)
}

function Get-InputId($obj, [string]$typeName) {
    # -VM / -VMSnapshot accept the simulator's objects (or anything with an Id).
    if ($null -eq $obj) { return $null }
    $id = $obj.Id
    if ($null -eq $id) { throw "Cannot bind an object without an Id as $typeName." }
    ([guid]"$id").ToString()
}

# ---------------------------------------------------------------------------------------------
# Resolution helpers

function Test-Wildcard([string]$s) { [System.Management.Automation.WildcardPattern]::ContainsWildcardCharacters($s) }

function New-NamePattern([string]$s) {
    [System.Management.Automation.WildcardPattern]::new($s, [System.Management.Automation.WildcardOptions]::IgnoreCase)
}

# VMs by name (wildcards, case-insensitive); a plain name that matches nothing → a non-terminating
# not-found error (INVENTED as non-terminating: it is what `Get-VM x -ErrorAction SilentlyContinue` idioms imply).
function Resolve-VMsByName($state, [string[]]$names, [string]$cmdName, $cmdlet) {
    $out = [System.Collections.Generic.List[object]]::new()
    foreach ($n in $names) {
        $pattern = New-NamePattern $n
        $hit = $false
        foreach ($v in $state.vms) {
            if (-not $pattern.IsMatch($v.name)) { continue }
            $hit = $true
            if (-not $out.Contains($v)) { $out.Add($v) }
        }
        if (-not $hit -and -not (Test-Wildcard $n)) {
            $cmdlet.WriteError((New-VMNotFound $cmdName $n))
        }
    }
    $out.ToArray()
}

function Resolve-VMsByObject($state, $objects, [string]$cmdName, $cmdlet) {
    $out = [System.Collections.Generic.List[object]]::new()
    foreach ($o in $objects) {
        $id = Get-InputId $o 'VirtualMachine'
        $vm = Find-SimVM $state $id
        if (-not $vm) { $cmdlet.WriteError((New-VMNotFound $cmdName ([string]$o.Name))); continue }
        $out.Add($vm)
    }
    $out.ToArray()
}

function Resolve-VMs($state, $boundParams, [string]$cmdName, $cmdlet) {
    if ($boundParams.ContainsKey('VM')) { return Resolve-VMsByObject $state $boundParams['VM'] $cmdName $cmdlet }
    $names = if ($boundParams.ContainsKey('VMName')) { $boundParams['VMName'] } else { $boundParams['Name'] }
    Resolve-VMsByName $state $names $cmdName $cmdlet
}

function Get-ActivePaths($vm) { @($vm.disks | ForEach-Object { $_.path }) }

function Get-BaseStem([string]$path) {
    # web01.vhdx → web01; web01_<GUID>.avhdx → web01 (real naming: <disk>_<GUID-UPPER>.avhdx, §2.4)
    $name = [System.IO.Path]::GetFileNameWithoutExtension($path)
    $name -replace '_[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$', ''
}

function New-DifferencingDisk($state, [string]$parentPath) {
    $dir = [System.IO.Path]::GetDirectoryName($parentPath)
    $path = [System.IO.Path]::Combine($dir, (Get-BaseStem $parentPath) + '_' + (Format-Upper ([guid]::NewGuid().ToString())) + '.avhdx')
    [System.IO.File]::WriteAllBytes($path, [byte[]]@())
    $parentSize = if ($state.vhds[$parentPath]) { $state.vhds[$parentPath].size } else { 136365211648 }
    $state.vhds[$path] = @{ parentPath = $parentPath; size = $parentSize; diskIdentifier = [guid]::NewGuid().ToString().ToUpperInvariant() }
    $path
}

# ---------------------------------------------------------------------------------------------
# Get-VM (§2.6)

function Get-VM {
    [CmdletBinding(DefaultParameterSetName = 'Name')]
    [OutputType('Microsoft.HyperV.PowerShell.VirtualMachine')]
    param(
        [Parameter(ParameterSetName = 'Name', Position = 0, ValueFromPipeline = $true)]
        [Alias('VMName')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Name,

        [Parameter(ParameterSetName = 'Id', Position = 0, Mandatory = $true)]
        [Alias('VMId')]
        [guid]$Id,

        [string[]]$ComputerName
    )
    process {
        $h = Open-SimState
        try {
            $state = $h.State
            if ($PSCmdlet.ParameterSetName -eq 'Id') {
                $vm = Find-SimVM $state $Id.ToString()
                if (-not $vm) {
                    # INVENTED text (the reference only has the by-name message).
                    $PSCmdlet.WriteError((New-HvError "Hyper-V was unable to find a virtual machine with id `"$Id`"." 'InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM' InvalidArgument $Id))
                    return
                }
                $result = @(ConvertTo-VMObject $state $vm)
            } elseif ($PSBoundParameters.ContainsKey('Name')) {
                $result = @(Resolve-VMsByName $state $Name 'Get-VM' $PSCmdlet | ForEach-Object { ConvertTo-VMObject $state $_ })
            } else {
                $result = @($state.vms | ForEach-Object { ConvertTo-VMObject $state $_ })
            }
            Save-SimStateIfDirty $h
        } finally { Close-SimState $h }
        $result
    }
}

# ---------------------------------------------------------------------------------------------
# Get-VMSnapshot (§2.2)

function Get-VMSnapshot {
    [CmdletBinding(DefaultParameterSetName = 'VMName')]
    [OutputType('Microsoft.HyperV.PowerShell.VMSnapshot')]
    param(
        [Parameter(ParameterSetName = 'VMName', Position = 0, Mandatory = $true)]
        [ValidateNotNullOrEmpty()]
        [string[]]$VMName,

        [Parameter(ParameterSetName = 'VMObject', Position = 0, Mandatory = $true, ValueFromPipeline = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VirtualMachine')]
        [object[]]$VM,

        [Parameter(ParameterSetName = 'Id', Position = 0, Mandatory = $true)]
        [guid]$Id,

        [Parameter(ParameterSetName = 'VMName', Position = 1)]
        [Parameter(ParameterSetName = 'VMObject', Position = 1)]
        [Parameter(ParameterSetName = 'Child', Position = 0)]
        [Parameter(ParameterSetName = 'Parent', Position = 0)]
        [ValidateNotNullOrEmpty()]
        [string]$Name,

        [Parameter(ParameterSetName = 'Child', Mandatory = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VMSnapshot')]
        [object]$ChildOf,

        [Parameter(ParameterSetName = 'Parent', Mandatory = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VirtualMachine')]
        [object]$ParentOf,

        [Parameter(ParameterSetName = 'VMName')]
        [Parameter(ParameterSetName = 'VMObject')]
        [Parameter(ParameterSetName = 'Child')]
        [Parameter(ParameterSetName = 'Parent')]
        [Microsoft.HyperV.PowerShell.SnapshotType]$SnapshotType,

        [Parameter(ParameterSetName = 'VMName')]
        [string[]]$ComputerName
    )
    process {
        $h = Open-SimState
        try {
            $state = $h.State
            $set = $PSCmdlet.ParameterSetName
            $candidates = @()
            if ($set -eq 'Id') {
                $candidates = @(Find-SimSnapshot $state $Id.ToString() | Where-Object { $_ })
            } elseif ($set -eq 'Child') {
                $pid_ = Get-InputId $ChildOf 'VMSnapshot'
                # Immediate children only (§2.2).
                $candidates = [Snapvisor.HyperVSim.Support]::SortBy(@($state.snapshots | Where-Object { $_.parentId -eq $pid_ }), 'created')
            } elseif ($set -eq 'Parent') {
                $vmId = Get-InputId $ParentOf 'VirtualMachine'
                $vmRec = Find-SimVM $state $vmId
                if ($vmRec -and $vmRec.parentSnapshotId) { $candidates = @(Find-SimSnapshot $state $vmRec.parentSnapshotId | Where-Object { $_ }) }
            } else {
                $vms = @(Resolve-VMs $state $PSBoundParameters 'Get-VMSnapshot' $PSCmdlet)
                $candidates = @(foreach ($v in $vms) { Get-VMSnapshotsOf $state $v.id })
            }
            if ($PSBoundParameters.ContainsKey('Name')) {
                $pattern = New-NamePattern $Name
                $candidates = @($candidates | Where-Object { $pattern.IsMatch($_.name) })
            }
            if ($PSBoundParameters.ContainsKey('SnapshotType')) {
                $candidates = @($candidates | Where-Object { [Microsoft.HyperV.PowerShell.SnapshotType]$_.snapshotType -eq $SnapshotType })
            }
            $result = @($candidates | ForEach-Object { ConvertTo-SnapshotObject $state $_ })
            Save-SimStateIfDirty $h
        } finally { Close-SimState $h }
        # §2.2: empty result is an error only when -Name/-SnapshotType was given or no VM parameter was.
        $vmGiven = $set -eq 'VMName' -or $set -eq 'VMObject'
        if ($result.Count -eq 0 -and ($PSBoundParameters.ContainsKey('Name') -or $PSBoundParameters.ContainsKey('SnapshotType') -or -not $vmGiven)) {
            $PSCmdlet.ThrowTerminatingError((New-SnapshotNotFound 'Get-VMSnapshot'))
        }
        $result
    }
}

# ---------------------------------------------------------------------------------------------
# Checkpoint-VM (§2.1, §2.7)

function Get-CheckpointPlan($vm) {
    # Returns @{ error = <text> } or @{ hasMemory = bool }.
    $id = Format-Upper $vm.id
    $name = $vm.name
    $running = $vm.state -eq 'Running' -or $vm.state -eq 'Paused'
    # Standard: memory when the VM runs/is paused; a Saved VM's saved state is kept too (inf: the
    # checkpoint copies the VM's run-time state; §2.3 "Off/Saved VM → ends Saved (checkpoint with memory)").
    $standard = @{ hasMemory = ($running -or $vm.state -eq 'Saved') }
    # Production (no memory) is possible when the VM is off, or running with a guest that supports it
    # (per-VM flag productionSupported). A paused or saved VM cannot run the guest's VSS/fsfreeze (inf).
    $productionOk = $vm.state -eq 'Off' -or ($vm.state -eq 'Running' -and $vm.productionSupported)
    switch ([string]$vm.checkpointType) {
        'Disabled' {
            # §2.1, Vagrant #9977 text (obs).
            return @{ error = "Checkpoint operation failed.`nCheckpoints have been disabled.`nCheckpoint operation for '$name' failed. (Virtual machine ID $id)`nCheckpoints have been disabled for '$name'. (Virtual machine ID $id)." }
        }
        'Production' { if ($productionOk) { return @{ hasMemory = $false } } else { return $standard } }
        'ProductionOnly' {
            if ($productionOk) { return @{ hasMemory = $false } }
            # INVENTED text: the reference has no ProductionOnly failure message (§2.1, §7).
            return @{ error = "Checkpoint operation failed.`nProduction checkpoints cannot be created for '$name'.`nCheckpoint operation for '$name' failed. (Virtual machine ID $id)`nCould not create a production checkpoint for '$name' because the guest does not support it, and the checkpoint type is ProductionOnly. (Virtual machine ID $id)" }
        }
        default { return $standard }
    }
}

function Checkpoint-VM {
    [CmdletBinding(DefaultParameterSetName = 'ByName', SupportsShouldProcess = $true)]
    param(
        [Parameter(ParameterSetName = 'ByName', Position = 0, Mandatory = $true)]
        [Alias('VMName')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Name,

        [Parameter(ParameterSetName = 'ByVM', Position = 0, Mandatory = $true, ValueFromPipeline = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VirtualMachine')]
        [object[]]$VM,

        [Parameter(Position = 1)]
        [Alias('CheckpointName')]
        [ValidateNotNullOrEmpty()]
        [string]$SnapshotName,

        [switch]$Passthru,
        [switch]$AsJob,
        [Parameter(ParameterSetName = 'ByName')]
        [string[]]$ComputerName
    )
    process {
        # Phase 1 (locked): resolve and check. Phase 2: the configurable delay (SSH can be cut here).
        # Phase 3 (locked): commit.
        $h = Open-SimState
        try {
            $state = $h.State
            $vms = @(Resolve-VMs $state $PSBoundParameters 'Checkpoint-VM' $PSCmdlet)
            $delay = Get-Knob $state 'checkpointDelayMs' 0
            Save-SimStateIfDirty $h
        } finally { Close-SimState $h }

        foreach ($v in $vms) {
            $snapName = if ($PSBoundParameters.ContainsKey('SnapshotName')) { $SnapshotName } else {
                # §2.1: documented default "virtual_machine_name (MM/DD/YYY -hh:mm:ss AM\PM)" (doc format
                # followed literally; real hosts' exact spacing is UNVERIFIED).
                '{0} ({1})' -f $v.name, [datetime]::Now.ToString('MM/dd/yyyy -hh:mm:ss tt', $script:Inv)
            }
            if ($snapName.Length -gt 100) {
                # §2.1: "Names are limited to 100 characters" (doc); the error text is INVENTED.
                $PSCmdlet.WriteError((New-HvError "The checkpoint name is too long. Checkpoint names are limited to 100 characters." ('InvalidParameter,' + (Get-CommandTypeName 'Checkpoint-VM')) InvalidArgument $snapName))
                continue
            }
            if (-not $PSCmdlet.ShouldProcess($v.name, 'Checkpoint-VM')) { continue }
            if ($delay -gt 0) { [System.Threading.Thread]::Sleep($delay) }

            $h = Open-SimState
            $failure = $null
            $created = $null
            try {
                $state = $h.State
                $rec = Find-SimVM $state $v.id
                if (-not $rec) { $failure = New-VMNotFound 'Checkpoint-VM' $v.name }
                elseif (Test-Merging $state $rec.id) {
                    # INVENTED text: the reference has no message for a checkpoint during a merge (§2.1, §7).
                    $failure = New-OperationFailed 'Checkpoint-VM' "Checkpoint operation failed.`nCannot create a checkpoint of '$($rec.name)' while its disks are being merged.`nCheckpoint operation for '$($rec.name)' failed. (Virtual machine ID $(Format-Upper $rec.id))"
                } else {
                    $plan = Get-CheckpointPlan $rec
                    if ($plan.error) { $failure = New-OperationFailed 'Checkpoint-VM' $plan.error }
                    else {
                        $snapId = [guid]::NewGuid().ToString()
                        $frozen = @()
                        foreach ($d in $rec.disks) {
                            $frozen += , @{ controllerType = $d.controllerType; controllerNumber = $d.controllerNumber; controllerLocation = $d.controllerLocation; path = $d.path }
                            $d.path = New-DifferencingDisk $state $d.path
                        }
                        $snap = @{
                            id = $snapId; vmId = $rec.id; name = $snapName; parentId = $rec.parentSnapshotId
                            created = Get-NowIso; hasMemory = [bool]$plan.hasMemory; snapshotType = 'Standard'; isAutomatic = $false
                            # A checkpoint copies the VM's configuration (Notes, CheckpointType) and power state.
                            notes = [string]$rec.notes; checkpointType = $rec.checkpointType; vmState = $rec.state
                            disks = $frozen; failRemove = $false
                        }
                        $state.snapshots = @($state.snapshots) + , $snap
                        $rec.parentSnapshotId = $snapId
                        $created = $snap
                    }
                }
                Save-SimState $h
                if ($created -and $Passthru) { $out = ConvertTo-SnapshotObject $state $created }
            } finally { Close-SimState $h }
            if ($failure) { $PSCmdlet.WriteError($failure); continue }
            # -Passthru: the docs disagree on the type (§2.1); the simulator returns the VMSnapshot.
            if ($created -and $Passthru) { $out }
        }
    }
}

# ---------------------------------------------------------------------------------------------
# Restore-VMSnapshot (§2.3)

function Restore-VMSnapshot {
    [CmdletBinding(DefaultParameterSetName = 'VMName', SupportsShouldProcess = $true, ConfirmImpact = 'High')]
    param(
        [Parameter(ParameterSetName = 'VMName', Position = 0, Mandatory = $true)]
        [Parameter(ParameterSetName = 'VMObject', Position = 1, Mandatory = $true)]
        [ValidateNotNullOrEmpty()]
        [string]$Name,

        [Parameter(ParameterSetName = 'VMName', Position = 1, Mandatory = $true)]
        [ValidateNotNullOrEmpty()]
        [string]$VMName,

        [Parameter(ParameterSetName = 'VMSnapshot', Position = 0, Mandatory = $true, ValueFromPipeline = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VMSnapshot')]
        [object]$VMSnapshot,

        [Parameter(ParameterSetName = 'VMObject', Position = 0, Mandatory = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VirtualMachine')]
        [object]$VM,

        [switch]$Passthru,
        [switch]$AsJob,
        [Parameter(ParameterSetName = 'VMName')]
        [string[]]$ComputerName
    )
    process {
        # Resolve first (read-only), ask ShouldProcess outside the lock, then apply under the lock.
        $h = Open-SimState
        try {
            $state = $h.State
            $failure = $null
            $target = $null
            if ($PSCmdlet.ParameterSetName -eq 'VMSnapshot') {
                $target = Find-SimSnapshot $state (Get-InputId $VMSnapshot 'VMSnapshot')
                if (-not $target) { $failure = New-SnapshotNotFound 'Restore-VMSnapshot' }
            } else {
                $vmRec = $null
                if ($PSCmdlet.ParameterSetName -eq 'VMObject') { $vmRec = Find-SimVM $state (Get-InputId $VM 'VirtualMachine') }
                else { $vmRec = @($state.vms | Where-Object { (New-NamePattern $VMName).IsMatch($_.name) })[0] }
                if (-not $vmRec) { $failure = New-VMNotFound 'Restore-VMSnapshot' $(if ($VMName) { $VMName } else { [string]$VM.Name }) }
                else {
                    $pattern = New-NamePattern $Name
                    $hits = @(Get-VMSnapshotsOf $state $vmRec.id | Where-Object { $pattern.IsMatch($_.name) })
                    if ($hits.Count -eq 0) { $failure = New-SnapshotNotFound 'Restore-VMSnapshot' }
                    elseif ($hits.Count -gt 1) {
                        # §2.3: MoreThanOneSnapshotFound, InvalidArgument; English text INVENTED.
                        $failure = New-HvError 'More than one snapshot matches the given criteria. Specify a unique snapshot name.' ('InvalidParameter,' + (Get-CommandTypeName 'Restore-VMSnapshot')) InvalidArgument $null
                    } else { $target = $hits[0] }
                }
            }
            Save-SimStateIfDirty $h
        } finally { Close-SimState $h }
        if ($failure) { $PSCmdlet.ThrowTerminatingError($failure) }

        $text = "Restore-VMSnapshot will restore checkpoint `"$($target.name)`"."
        if (-not $PSCmdlet.ShouldProcess($text, $text, 'Confirm')) { return }

        $h = Open-SimState
        try {
            $state = $h.State
            $snap = Find-SimSnapshot $state $target.id
            if (-not $snap) { $PSCmdlet.ThrowTerminatingError((New-SnapshotNotFound 'Restore-VMSnapshot')) }
            $rec = Find-SimVM $state $snap.vmId
            $original = [string]$rec.state
            # 1. Running or Paused → the cmdlet saves the VM first (its saved state is then discarded).
            if ($original -eq 'Running' -or $original -eq 'Paused') { $rec.state = 'Saved' }
            # 2. Apply: disks, configuration and power state come from the checkpoint.
            $active = @(Get-ActivePaths $rec)
            for ($i = 0; $i -lt $snap.disks.Count; $i++) {
                $old = if ($i -lt $active.Count) { $active[$i] } else { $null }
                $new = New-DifferencingDisk $state $snap.disks[$i].path
                if ($i -lt $rec.disks.Count) { $rec.disks[$i].path = $new }
                # The discarded current state: its .avhdx goes unless something still builds on it.
                if ($old -and $old.EndsWith('.avhdx') -and -not (Test-DiskReferenced $state $old)) {
                    $state.vhds.Remove($old)
                    if ([System.IO.File]::Exists($old)) { [System.IO.File]::Delete($old) }
                }
            }
            $rec.state = if ($snap.hasMemory) { 'Saved' } else { 'Off' }
            $rec.notes = [string]$snap.notes
            if ($snap.checkpointType) { $rec.checkpointType = $snap.checkpointType }
            $rec.parentSnapshotId = $snap.id
            # 3. finally: Saved now and Running before → Start.
            if ($rec.state -eq 'Saved' -and $original -eq 'Running') { $rec.state = 'Running'; $rec.started = Get-NowIso }
            Save-SimState $h
            $out = if ($Passthru) { ConvertTo-SnapshotObject $state $snap }
        } finally { Close-SimState $h }
        if ($Passthru) { $out }
    }
}

function Test-DiskReferenced($state, [string]$path) {
    foreach ($s in $state.snapshots) { foreach ($d in $s.disks) { if ($d.path -eq $path) { return $true } } }
    foreach ($v in $state.vms) { foreach ($d in $v.disks) { if ($d.path -eq $path) { return $true } } }
    foreach ($k in @($state.vhds.Keys)) { if ($state.vhds[$k].parentPath -eq $path) { return $true } }
    $false
}

# ---------------------------------------------------------------------------------------------
# Remove-VMSnapshot (§2.4, §2.5)

function Remove-OneSnapshot($state, $snap) {
    $vm = Find-SimVM $state $snap.vmId
    foreach ($c in $state.snapshots) { if ($c.parentId -eq $snap.id) { $c.parentId = $snap.parentId } }
    if ($vm.parentSnapshotId -eq $snap.id) { $vm.parentSnapshotId = $snap.parentId }
    $state.snapshots = @($state.snapshots | Where-Object { $_.id -ne $snap.id })

    # Disks: the checkpoint's frozen disk D no longer needs to stay read-only. If exactly one disk C
    # builds on D, C is merged into D: whatever used C now uses D, and C's file disappears when the
    # merge completes (mergeMs). The references move at once; only the file lingers (simplification).
    $mergeMs = Get-Knob $state 'mergeMs' 2000
    $deletes = @()
    foreach ($fd in $snap.disks) {
        $d = $fd.path
        $children = @($state.vhds.Keys | Where-Object { $state.vhds[$_].parentPath -eq $d -and -not (Test-PendingDelete $state $_) })
        if ($children.Count -ne 1) { continue }
        $c = $children[0]
        foreach ($v in $state.vms) { foreach ($x in $v.disks) { if ($x.path -eq $c) { $x.path = $d } } }
        foreach ($s in $state.snapshots) { foreach ($x in $s.disks) { if ($x.path -eq $c) { $x.path = $d } } }
        foreach ($k in @($state.vhds.Keys)) { if ($state.vhds[$k].parentPath -eq $c) { $state.vhds[$k].parentPath = $d } }
        $deletes += $c
    }
    # Each removal starts a merge; merges of one VM run one after another.
    $start = [datetime]::UtcNow
    foreach ($m in $state.merges) { if ($m.vmId -eq $vm.id) { $u = ConvertFrom-Iso $m.until; if ($u -gt $start) { $start = $u } } }
    $until = $start.AddMilliseconds($mergeMs).ToString('o', $script:Inv)
    if ($deletes.Count -eq 0) { $state.merges = @($state.merges) + , @{ vmId = $vm.id; until = $until; deletePath = $null } }
    foreach ($c in $deletes) { $state.merges = @($state.merges) + , @{ vmId = $vm.id; until = $until; deletePath = $c } }
}

function Test-PendingDelete($state, [string]$path) {
    foreach ($m in $state.merges) { if ($m.deletePath -eq $path) { return $true } }
    $false
}

function Get-Descendants($state, [string]$id) {
    # Post-order: deepest first, so each removal is a leaf-or-inner removal of a still-existing checkpoint.
    foreach ($c in @($state.snapshots | Where-Object { $_.parentId -eq $id })) {
        Get-Descendants $state $c.id
        $c
    }
}

function Remove-VMSnapshot {
    [CmdletBinding(DefaultParameterSetName = 'VMName', SupportsShouldProcess = $true)]
    param(
        [Parameter(ParameterSetName = 'VMName', Position = 0, Mandatory = $true)]
        [ValidateNotNullOrEmpty()]
        [string[]]$VMName,

        [Parameter(ParameterSetName = 'VMObject', Position = 0, Mandatory = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VirtualMachine')]
        [object[]]$VM,

        [Parameter(ParameterSetName = 'VMSnapshot', Position = 0, Mandatory = $true, ValueFromPipeline = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VMSnapshot')]
        [object[]]$VMSnapshot,

        [Parameter(ParameterSetName = 'VMName', Position = 1)]
        [Parameter(ParameterSetName = 'VMObject', Position = 1)]
        [ValidateNotNullOrEmpty()]
        [string[]]$Name,

        [Alias('IncludeAllChildCheckpoints')]
        [switch]$IncludeAllChildSnapshots,

        [switch]$Passthru,
        [switch]$AsJob,
        [Parameter(ParameterSetName = 'VMName')]
        [string[]]$ComputerName
    )
    process {
        $h = Open-SimState
        $errors = [System.Collections.Generic.List[object]]::new()
        $removed = [System.Collections.Generic.List[object]]::new()
        try {
            $state = $h.State
            $targets = @()
            if ($PSCmdlet.ParameterSetName -eq 'VMSnapshot') {
                # A VMSnapshot object that no longer exists: silently nothing (inf from §2.4's empty ValidateOperandList).
                $targets = @(foreach ($o in $VMSnapshot) { Find-SimSnapshot $state (Get-InputId $o 'VMSnapshot') })
            } else {
                $vms = @(Resolve-VMs $state $PSBoundParameters 'Remove-VMSnapshot' $PSCmdlet)
                foreach ($v in $vms) {
                    $all = Get-VMSnapshotsOf $state $v.id
                    if ($PSBoundParameters.ContainsKey('Name')) {
                        $patterns = @($Name | ForEach-Object { New-NamePattern $_ })
                        $targets += @($all | Where-Object { $n = $_.name; @($patterns | Where-Object { $_.IsMatch($n) }).Count -gt 0 })
                    } else {
                        $targets += $all
                    }
                }
            }
            # §2.4: no match ⇒ silent no-op, exit 0.
            foreach ($t in $targets) {
                if (-not $t) { continue }
                $snap = Find-SimSnapshot $state $t.id
                if (-not $snap) { continue } # already gone with a removed tree
                $rec = Find-SimVM $state $snap.vmId
                if (-not $PSCmdlet.ShouldProcess($snap.name, 'Remove-VMSnapshot')) { continue }
                $tree = @($snap)
                if ($IncludeAllChildSnapshots) { $tree = @(Get-Descendants $state $snap.id) + $snap }
                foreach ($s in $tree) {
                    if ($s.failRemove) {
                        # §2.4 (obs, PS-AutoLab #167); written as a NON-terminating error per operand (§2.4).
                        $vmId = Format-Upper $rec.id
                        $msg = @(
                            "'$($rec.name)' failed to remove checkpoint."
                            'Cannot delete checkpoint: The system cannot find the file specified. (0x80070002).'
                            'Virtual machine failed to generate VHD tree.'
                            'Failed to get VHD parent.'
                            'An error occurred because the checkpoint is missing.'
                            "'$($rec.name)' failed to remove checkpoint. (Virtual machine ID $vmId)"
                            "Cannot delete checkpoint: The system cannot find the file specified. (0x80070002). Checkpoint ID $(Format-Upper $s.id)."
                        ) -join "`n"
                        $errors.Add((New-OperationFailed 'Remove-VMSnapshot' $msg))
                        continue
                    }
                    if ($Passthru) { $removed.Add((ConvertTo-SnapshotObject $state $s)) }
                    Remove-OneSnapshot $state $s
                }
            }
            Save-SimState $h
        } finally { Close-SimState $h }
        foreach ($e in $errors) { $PSCmdlet.WriteError($e) }
        if ($Passthru) { $removed.ToArray() }
    }
}

# ---------------------------------------------------------------------------------------------
# Power: Stop-VM / Start-VM / Save-VM / Suspend-VM / Resume-VM (§2.8)

function Invoke-PowerChange([string]$cmdName, $cmdlet, $boundParams, [scriptblock]$change) {
    # $change: param($vm, $state) → $null (done), 'warn' (already in that state), or an error text.
    $h = Open-SimState
    $results = @()
    try {
        $state = $h.State
        $vms = @(Resolve-VMs $state $boundParams $cmdName $cmdlet)
        foreach ($vm in $vms) {
            if (-not $cmdlet.ShouldProcess($vm.name, $cmdName)) { continue }
            $results += , @{ vm = $vm; outcome = (& $change $vm $state) }
        }
        Save-SimState $h
        $objects = @{}
        foreach ($r in $results) { $objects[$r.vm.id] = ConvertTo-VMObject $state $r.vm }
    } finally { Close-SimState $h }
    foreach ($r in $results) {
        if ($r.outcome -eq 'warn') {
            # §2.8 (obs) for Stop-VM; the other cmdlets reuse it (INVENTED).
            $cmdlet.WriteWarning('The virtual machine is already in the specified state.')
        } elseif ($r.outcome -is [System.Management.Automation.ErrorRecord]) {
            $cmdlet.WriteError($r.outcome)
            continue
        } elseif ($r.outcome -is [hashtable]) {
            # A failure that takes time (outside the lock): wait, then report.
            [System.Threading.Thread]::Sleep([int]$r.outcome.waitMs)
            $cmdlet.WriteError($r.outcome.error)
            continue
        }
        if ($boundParams['Passthru']) { $objects[$r.vm.id] }
    }
}

function New-StateError([string]$cmdName, $vm, [string]$what) {
    # INVENTED text: wrong-state failures of the power cmdlets are not in the reference.
    New-OperationFailed $cmdName "'$($vm.name)' failed to $what. The operation cannot be performed while the virtual machine is in its current state ($($vm.state)). (Virtual machine ID $(Format-Upper $vm.id))"
}

function Stop-VM {
    [CmdletBinding(DefaultParameterSetName = 'Name', SupportsShouldProcess = $true)]
    param(
        [Parameter(ParameterSetName = 'Name', Position = 0, Mandatory = $true)]
        [Alias('VMName')]
        [ValidateNotNullOrEmpty()]
        [string[]]$Name,
        [Parameter(ParameterSetName = 'VMObject', Position = 0, Mandatory = $true, ValueFromPipeline = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VirtualMachine')]
        [object[]]$VM,
        [switch]$Force,
        [switch]$TurnOff,
        [switch]$Save,
        [switch]$Passthru,
        [switch]$AsJob,
        [Parameter(ParameterSetName = 'Name')]
        [string[]]$ComputerName
    )
    process {
        $turnOff = [bool]$TurnOff; $save = [bool]$Save
        $graceful = @()
        Invoke-PowerChange 'Stop-VM' $PSCmdlet $PSBoundParameters {
            param($vm, $state)
            if ($save) {
                if ($vm.state -eq 'Saved') { return 'warn' }
                if ($vm.state -eq 'Off') { return New-StateError 'Stop-VM' $vm 'save' }
                $vm.state = 'Saved'; return $null
            }
            if ($vm.state -eq 'Off') { return 'warn' }
            if ($turnOff -or $vm.state -eq 'Saved') {
                # Turning off a saved VM discards its saved state (INVENTED for the graceful case).
                $vm.state = 'Off'; return $null
            }
            if ($vm.state -eq 'Paused') { return New-StateError 'Stop-VM' $vm 'shut down' }
            if ($vm.guestShutdown) { $vm.state = 'Off'; return $null }
            # No cooperating guest: fail after a wait (knob shutdownWaitMs). INVENTED behaviour and text.
            return @{
                waitMs = (Get-Knob $state 'shutdownWaitMs' 1000)
                error  = New-OperationFailed 'Stop-VM' "'$($vm.name)' failed to shut down. The guest operating system did not respond to the shutdown request. (Virtual machine ID $(Format-Upper $vm.id))"
            }
        }
    }
}

function Start-VM {
    [CmdletBinding(DefaultParameterSetName = 'Name', SupportsShouldProcess = $true)]
    param(
        [Parameter(ParameterSetName = 'Name', Position = 0, Mandatory = $true)]
        [Alias('VMName')] [ValidateNotNullOrEmpty()] [string[]]$Name,
        [Parameter(ParameterSetName = 'VMObject', Position = 0, Mandatory = $true, ValueFromPipeline = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VirtualMachine')] [object[]]$VM,
        [switch]$Passthru, [switch]$AsJob,
        [Parameter(ParameterSetName = 'Name')] [string[]]$ComputerName
    )
    process {
        Invoke-PowerChange 'Start-VM' $PSCmdlet $PSBoundParameters {
            param($vm, $state)
            if ($vm.state -eq 'Running') { return 'warn' }
            if ($vm.state -eq 'Paused') { return New-StateError 'Start-VM' $vm 'start' }
            $vm.state = 'Running'; $vm.started = Get-NowIso; return $null
        }
    }
}

function Save-VM {
    [CmdletBinding(DefaultParameterSetName = 'Name', SupportsShouldProcess = $true)]
    param(
        [Parameter(ParameterSetName = 'Name', Position = 0, Mandatory = $true)]
        [Alias('VMName')] [ValidateNotNullOrEmpty()] [string[]]$Name,
        [Parameter(ParameterSetName = 'VMObject', Position = 0, Mandatory = $true, ValueFromPipeline = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VirtualMachine')] [object[]]$VM,
        [switch]$Passthru, [switch]$AsJob,
        [Parameter(ParameterSetName = 'Name')] [string[]]$ComputerName
    )
    process {
        Invoke-PowerChange 'Save-VM' $PSCmdlet $PSBoundParameters {
            param($vm, $state)
            if ($vm.state -eq 'Saved') { return 'warn' }
            if ($vm.state -eq 'Off') { return New-StateError 'Save-VM' $vm 'save' }
            $vm.state = 'Saved'; return $null
        }
    }
}

function Suspend-VM {
    [CmdletBinding(DefaultParameterSetName = 'Name', SupportsShouldProcess = $true)]
    param(
        [Parameter(ParameterSetName = 'Name', Position = 0, Mandatory = $true)]
        [Alias('VMName')] [ValidateNotNullOrEmpty()] [string[]]$Name,
        [Parameter(ParameterSetName = 'VMObject', Position = 0, Mandatory = $true, ValueFromPipeline = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VirtualMachine')] [object[]]$VM,
        [switch]$Passthru, [switch]$AsJob,
        [Parameter(ParameterSetName = 'Name')] [string[]]$ComputerName
    )
    process {
        Invoke-PowerChange 'Suspend-VM' $PSCmdlet $PSBoundParameters {
            param($vm, $state)
            if ($vm.state -eq 'Paused') { return 'warn' }
            if ($vm.state -ne 'Running') { return New-StateError 'Suspend-VM' $vm 'pause' }
            $vm.state = 'Paused'; return $null
        }
    }
}

function Resume-VM {
    [CmdletBinding(DefaultParameterSetName = 'Name', SupportsShouldProcess = $true)]
    param(
        [Parameter(ParameterSetName = 'Name', Position = 0, Mandatory = $true)]
        [Alias('VMName')] [ValidateNotNullOrEmpty()] [string[]]$Name,
        [Parameter(ParameterSetName = 'VMObject', Position = 0, Mandatory = $true, ValueFromPipeline = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VirtualMachine')] [object[]]$VM,
        [switch]$Passthru, [switch]$AsJob,
        [Parameter(ParameterSetName = 'Name')] [string[]]$ComputerName
    )
    process {
        Invoke-PowerChange 'Resume-VM' $PSCmdlet $PSBoundParameters {
            param($vm, $state)
            if ($vm.state -eq 'Running') { return 'warn' }
            if ($vm.state -ne 'Paused') { return New-StateError 'Resume-VM' $vm 'resume' }
            $vm.state = 'Running'; return $null
        }
    }
}

# ---------------------------------------------------------------------------------------------
# Set-VM (§2.7)

function Set-VM {
    [CmdletBinding(DefaultParameterSetName = 'Name', SupportsShouldProcess = $true)]
    param(
        [Parameter(ParameterSetName = 'Name', Position = 0, Mandatory = $true)]
        [Alias('VMName')] [ValidateNotNullOrEmpty()] [string[]]$Name,
        [Parameter(ParameterSetName = 'VMObject', Position = 0, Mandatory = $true, ValueFromPipeline = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VirtualMachine')] [object[]]$VM,
        [Microsoft.HyperV.PowerShell.CheckpointType]$CheckpointType,
        [AllowEmptyString()] [string]$Notes,
        [bool]$AutomaticCheckpointsEnabled,
        [switch]$Passthru,
        [Parameter(ParameterSetName = 'Name')] [string[]]$ComputerName
    )
    process {
        $bp = $PSBoundParameters
        Invoke-PowerChange 'Set-VM' $PSCmdlet $PSBoundParameters {
            param($vm, $state)
            if ($bp.ContainsKey('CheckpointType')) { $vm.checkpointType = $bp['CheckpointType'].ToString() }
            if ($bp.ContainsKey('Notes')) { $vm.notes = [string]$bp['Notes'] }
            if ($bp.ContainsKey('AutomaticCheckpointsEnabled')) { $vm.automaticCheckpointsEnabled = [bool]$bp['AutomaticCheckpointsEnabled'] }
            return $null
        }
    }
}

# ---------------------------------------------------------------------------------------------
# Get-VMHardDiskDrive / Get-VHD (§2.9)

function Get-VMHardDiskDrive {
    [CmdletBinding(DefaultParameterSetName = 'VMName')]
    param(
        [Parameter(ParameterSetName = 'VMName', Position = 0, Mandatory = $true)]
        [ValidateNotNullOrEmpty()] [string[]]$VMName,
        [Parameter(ParameterSetName = 'VMObject', Position = 0, Mandatory = $true, ValueFromPipeline = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VirtualMachine')] [object[]]$VM,
        [Parameter(ParameterSetName = 'VMSnapshot', Position = 0, Mandatory = $true, ValueFromPipeline = $true)]
        [PSTypeName('Microsoft.HyperV.PowerShell.VMSnapshot')] [object]$VMSnapshot,
        [Microsoft.HyperV.PowerShell.ControllerType]$ControllerType,
        [Parameter(ParameterSetName = 'VMName')] [string[]]$ComputerName
    )
    process {
        $h = Open-SimState
        try {
            $state = $h.State
            $result = @()
            if ($PSCmdlet.ParameterSetName -eq 'VMSnapshot') {
                $snap = Find-SimSnapshot $state (Get-InputId $VMSnapshot 'VMSnapshot')
                if (-not $snap) { $PSCmdlet.ThrowTerminatingError((New-SnapshotNotFound 'Get-VMHardDiskDrive')) }
                $rec = Find-SimVM $state $snap.vmId
                $result = @(foreach ($d in $snap.disks) { ConvertTo-DriveObject $rec $d $snap })
            } else {
                $vms = @(Resolve-VMs $state $PSBoundParameters 'Get-VMHardDiskDrive' $PSCmdlet)
                $result = @(foreach ($rec in $vms) { foreach ($d in $rec.disks) { ConvertTo-DriveObject $rec $d $null } })
            }
            if ($PSBoundParameters.ContainsKey('ControllerType')) { $result = @($result | Where-Object { $_.ControllerType -eq $ControllerType }) }
            Save-SimStateIfDirty $h
        } finally { Close-SimState $h }
        $result
    }
}

function Get-VHD {
    [CmdletBinding(DefaultParameterSetName = 'Path')]
    param(
        [Parameter(ParameterSetName = 'Path', Position = 0, Mandatory = $true, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true)]
        [Alias('FullName')] [ValidateNotNullOrEmpty()] [string[]]$Path,
        [string[]]$ComputerName
    )
    process {
        $h = Open-SimState
        $out = @()
        $errs = @()
        try {
            $state = $h.State
            foreach ($p in $Path) {
                $full = $PSCmdlet.GetUnresolvedProviderPathFromPSPath($p)
                if (-not [System.IO.File]::Exists($full)) {
                    # INVENTED text and id (the reference has no Get-VHD failure).
                    $errs += New-HvError "Getting the mounted storage instance for the path '$full' failed.`nThe system cannot find the file specified. (0x80070002)" 'ObjectNotFound,Microsoft.Vhd.PowerShell.Cmdlets.GetVHD' ObjectNotFound $full
                    continue
                }
                $info = $state.vhds[$full]
                # An .avhdx unknown to the state (an orphan a test put there) is still Differencing,
                # with no ParentPath (INVENTED: a real one would name the parent from its header).
                $parent = if ($info) { $info.parentPath } else { $null }
                $attached = $false
                foreach ($v in $state.vms) { foreach ($d in $v.disks) { if ($d.path -eq $full) { $attached = $true } } }
                $ident = if ($info -and $info.diskIdentifier) { $info.diskIdentifier } else {
                    ([guid]::new([System.Security.Cryptography.MD5]::HashData([System.Text.Encoding]::UTF8.GetBytes($full)))).ToString().ToUpperInvariant()
                }
                $size = if ($info -and $info.size) { [uint64]$info.size } else { [uint64]136365211648 }
                $out += [Snapvisor.HyperVSim.Support]::NewVhd($full, $parent, $attached, $ident, $size, $script:ComputerName)
            }
            Save-SimStateIfDirty $h
        } finally { Close-SimState $h }
        foreach ($e in $errs) { $PSCmdlet.WriteError($e) }
        $out
    }
}

# Aliases through the alias: drive (Set-Alias would import Microsoft.PowerShell.Utility, ~180 ms).
${alias:Get-VMCheckpoint} = 'Get-VMSnapshot'
${alias:Restore-VMCheckpoint} = 'Restore-VMSnapshot'
${alias:Remove-VMCheckpoint} = 'Remove-VMSnapshot'

Export-ModuleMember -Function Get-VM, Get-VMSnapshot, Checkpoint-VM, Restore-VMSnapshot, Remove-VMSnapshot, Stop-VM, Start-VM, Save-VM, Suspend-VM, Resume-VM, Set-VM, Get-VMHardDiskDrive, Get-VHD -Alias Get-VMCheckpoint, Restore-VMCheckpoint, Remove-VMCheckpoint
