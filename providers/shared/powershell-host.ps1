# The long-lived PowerShell host of a session (providers/shared/powershell-host.ts). It runs in the
# global scope after the shared preamble pieces (command-encoding.ts): the settings every request
# runs under, ConvertFrom-SvString, and $snapvisorHostExit / $snapvisorHostKill (the watchdog's
# delegates) with $snapvisorHostKillAfterMs.
#
# stdin: one request a line, base64 of UTF-8 JSON. The first is the hello {seq: 0, token}; then
# {seq, timeoutMs, script, params (strings opaque)}. For each request the host lets the script
# write to stdout and stderr as it would one-shot, then ends the reply: on stderr with the
# request's stream records as CLIXML (as a one-shot `-EncodedCommand` run shows them) and
# "\n##snapvisor-host <token> <seq>\n"; on stdout with "\n##snapvisor-host <token> <seq> <json>\n",
# the JSON holding the exit code. That leading "\n" is always the host's, so output that does not
# end its last line comes back as it is; the token comes only on stdin, so no output can end a
# reply early.
#
# A request runs in a nested pipeline of this runspace ([PowerShell]::Create('CurrentRunspace')),
# in a new scope under the global one: `exit N` ends the request with N, not the host (a nested
# pipeline's exit only sets $global:LASTEXITCODE), and what the script defines dies with its scope.
# A new runspace per request would throw away the modules a script loaded (importing Hyper-V is
# the slow part of a call) and, without a host of its own, `exit`'s code. The host's own state
# lives in a module, out of the requests' scope chain; what a script could change beyond its scope
# (globals, location, environment, $Error, the Console streams) is put back after each request.
#
# Windows PowerShell 5.1 syntax only. Run on PowerShell 7.6 (Linux) only: RunspaceMode (5.0+),
# `*>&1` bringing Write-Host's records (5.0+), a nested pipeline's `exit`, Console.SetIn and the console host writing through Console.Out are expected
# to behave the same in Windows PowerShell 5.1 but were not checked there.

$null = New-Module -Name SnapvisorHost -ArgumentList $snapvisorHostExit, $snapvisorHostKill, $snapvisorHostKillAfterMs -ScriptBlock {
  param($ExitAction, $KillAction, [int]$KillAfterMs)
  $In = [Console]::In
  $Out = [Console]::Out
  $Err = [Console]::Error
  # A one-shot request's stdin is empty: a script that reads it must not eat the next requests.
  [Console]::SetIn([System.IO.TextReader]::Null)
  $Token = $null
  $Seq = 0
  $Pipeline = $null
  $Failure = $null
  $Records = $null
  $Deadline = $null
  $Killer = $null
  $Baseline = $null

  # What a one-shot run's console host does with each object of the merged streams: output goes
  # on to Out-Default (stdout), stream records are kept for stderr, and Write-Host's text also
  # goes to stdout. Records are told by their type: `*>&1` does not mark them (writeErrorStream...).
  # Not a word of assignment: ForEach-Object runs this in the global scope.
  $Route = {
    if ($_ -is [System.Management.Automation.ErrorRecord]) { Add-SnapvisorHostRecord 'Error' $_ }
    elseif ($_ -is [System.Management.Automation.WarningRecord]) { Add-SnapvisorHostRecord 'warning' $_.Message }
    elseif ($_ -is [System.Management.Automation.VerboseRecord]) { Add-SnapvisorHostRecord 'verbose' $_.Message }
    elseif ($_ -is [System.Management.Automation.DebugRecord]) { Add-SnapvisorHostRecord 'debug' $_.Message }
    elseif ($_ -is [System.Management.Automation.InformationRecord]) { Add-SnapvisorHostRecord 'information' $_ }
    else { $_ }
  }

  function Add-SnapvisorHostRecord([string]$Stream, $Value) {
    if ($Stream -eq 'information') {
      if ($Value.Tags -contains 'PSHOST') {
        if ($Value.MessageData.NoNewLine) { $Host.UI.Write([string]$Value.MessageData.Message) } else { $Host.UI.WriteLine([string]$Value.MessageData.Message) }
      }
      $Value = [string]$Value.MessageData
    }
    $script:Records.Add(@($Stream, $Value))
  }

  # The state a request starts from, taken once, before the first request.
  function Save-SnapvisorHostBaseline {
    $b = @{ Location = (Get-Location).Path; Globals = @{}; Preferences = @{}; Defaults = @{}; Functions = @{}; Aliases = @{}
      Environment = [Environment]::GetEnvironmentVariables() }
    foreach ($v in (Get-Variable -Scope Global)) {
      $b.Globals[$v.Name] = $true
      if ($v.Name -like '*Preference' -or $v.Name -in 'ErrorView', 'FormatEnumerationLimit', 'OFS', 'OutputEncoding', 'MaximumHistoryCount') { $b.Preferences[$v.Name] = $v.Value }
    }
    foreach ($k in $global:PSDefaultParameterValues.Keys) { $b.Defaults[$k] = $global:PSDefaultParameterValues[$k] }
    foreach ($f in (Get-ChildItem -Path Function:)) { $b.Functions[$f.Name] = $true }
    foreach ($a in (Get-ChildItem -Path Alias:)) { $b.Aliases[$a.Name] = $true }
    $script:Baseline = $b
  }

  # Put back what a script may have changed beyond its own scope.
  function Restore-SnapvisorHostBaseline {
    $b = $script:Baseline
    if (-not [object]::ReferenceEquals([Console]::Out, $script:Out)) { [Console]::SetOut($script:Out) }
    if (-not [object]::ReferenceEquals([Console]::Error, $script:Err)) { [Console]::SetError($script:Err) }
    [Console]::SetIn([System.IO.TextReader]::Null)
    if ((Get-Location).Path -ne $b.Location) { Set-Location -LiteralPath $b.Location }
    foreach ($v in @(Get-Variable -Scope Global)) {
      if (-not $b.Globals.ContainsKey($v.Name)) { Remove-Variable -Name $v.Name -Scope Global -Force -ErrorAction SilentlyContinue }
    }
    foreach ($k in $b.Preferences.Keys) {
      $now = Get-Variable -Name $k -Scope Global -ErrorAction SilentlyContinue
      if ($null -eq $now -or -not [object]::ReferenceEquals($now.Value, $b.Preferences[$k])) { Set-Variable -Name $k -Scope Global -Value $b.Preferences[$k] -Force }
    }
    if ($global:PSDefaultParameterValues.Count -ne 0 -or $b.Defaults.Count -ne 0) {
      $global:PSDefaultParameterValues.Clear()
      foreach ($k in $b.Defaults.Keys) { $global:PSDefaultParameterValues[$k] = $b.Defaults[$k] }
    }
    foreach ($f in @(Get-ChildItem -Path Function:)) { if (-not $b.Functions.ContainsKey($f.Name)) { Remove-Item -LiteralPath "Function:$($f.Name)" -Force } }
    foreach ($a in @(Get-ChildItem -Path Alias:)) { if (-not $b.Aliases.ContainsKey($a.Name)) { Remove-Item -LiteralPath "Alias:$($a.Name)" -Force } }
    $now = [Environment]::GetEnvironmentVariables()
    foreach ($k in $now.Keys) { if (-not $b.Environment.Contains($k)) { [Environment]::SetEnvironmentVariable($k, $null) } }
    foreach ($k in $b.Environment.Keys) { if ($now[$k] -cne $b.Environment[$k]) { [Environment]::SetEnvironmentVariable($k, $b.Environment[$k]) } }
    $global:Error.Clear()
  }

  # A string as the content of a CLIXML <S> element, escaped by PSSerializer as the host's own is.
  function ConvertTo-SnapvisorHostClixml([string]$Text) {
    $x = [System.Management.Automation.PSSerializer]::Serialize($Text)
    $from = $x.IndexOf('<S>') + 3
    $x.Substring($from, $x.LastIndexOf('</S>') - $from)
  }

  # Reads the next request and makes it ready to run; $false at the end of stdin.
  function Receive-SnapvisorHostRequest {
    while ($true) {
      $line = $script:In.ReadLine()
      if ($null -eq $line) { return $false }
      $request = [System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String($line)) | ConvertFrom-Json
      $script:Seq = [long]$request.seq
      if ($script:Seq -ne 0) { break }
      $script:Token = [string]$request.token
      $hello = @{ exitCode = 0; version = $PSVersionTable.PSVersion.ToString(); edition = [string]$PSVersionTable.PSEdition
        windows = [System.Environment]::OSVersion.Platform -eq [System.PlatformID]::Win32NT }
      if ($PSVersionTable.PSVersion.Major -lt 5) { $hello.unsupported = "PowerShell $($PSVersionTable.PSVersion) has no nested pipelines of its runspace (RunspaceMode, 5.0+)" }
      $script:Err.Write("`n##snapvisor-host $($script:Token) 0`n")
      # Through the console host: its first write fixes the writer it keeps for good (Console.Out
      # as it is then), so a script's Console.SetOut cannot take the host's output from later requests.
      $Host.UI.Write("`n##snapvisor-host $($script:Token) 0 " + (ConvertTo-Json -InputObject $hello -Compress) + "`n")
      if ($hello.unsupported) { return $false }
      Save-SnapvisorHostBaseline
    }
    $global:Params = ConvertFrom-SvString $request.params
    $script:Records = New-Object System.Collections.Generic.List[object]
    $script:Failure = $null
    [System.AppDomain]::CurrentDomain.SetData('snapvisorHost.status', $null)
    # The request's deadline, as in the one-shot preamble: exit 124 (the whole host), kill 5 s later.
    $script:Deadline = New-Object System.Threading.CancellationTokenSource ([int]$request.timeoutMs)
    $null = $script:Deadline.Token.Register($ExitAction)
    $script:Killer = New-Object System.Threading.CancellationTokenSource ([int]$request.timeoutMs + $KillAfterMs)
    $null = $script:Killer.Token.Register($KillAction)
    # The appended line records `$?` of the script's last statement, which a one-shot run exits 1
    # for when false. It runs only when the script runs to its end (no `exit`, `return` or error).
    # Only after a script that parses: "1 +" would take the line as its operand.
    $text = $request.script
    try {
      $null = [ScriptBlock]::Create($text)
      $text += "`n" + '[System.AppDomain]::CurrentDomain.SetData(''snapvisorHost.status'', $?)'
    } catch {
      # The parse error is the request's: it fails the same way when it runs.
    }
    [System.AppDomain]::CurrentDomain.SetData('snapvisorHost.script', $text)
    $ps = [PowerShell]::Create([System.Management.Automation.RunspaceMode]::CurrentRunspace)
    # Dot-sourced as the one-shot `stdin` mode does, in a new scope; the script is fetched from the
    # AppDomain, not a variable, so the script's scope holds nothing of the host's. `*>&1` brings
    # every stream to $Route (a merge on the command would miss the script's inner commands).
    $null = $ps.AddScript('. ([ScriptBlock]::Create([System.AppDomain]::CurrentDomain.GetData(''snapvisorHost.script''))) *>&1', $true)
    $null = $ps.AddCommand('Microsoft.PowerShell.Core\ForEach-Object').AddParameter('Process', $Route).AddCommand('Microsoft.PowerShell.Core\Out-Default')
    $script:Pipeline = $ps
    # Last: even a silenced error is recorded in $Error.
    Remove-Variable -Name LASTEXITCODE -Scope Global -Force -ErrorAction SilentlyContinue
    $global:Error.Clear()
    $true
  }

  # The request's pipeline: invoked from the global scope, so the script's scope is a child of it.
  function Get-SnapvisorHostPipeline { $script:Pipeline }

  function Set-SnapvisorHostFailure($Record) { $script:Failure = $Record }

  # Disarms the watchdog, works out the exit code, puts the state back and ends the reply.
  function Complete-SnapvisorHostRequest {
    $script:Deadline.Dispose()
    $script:Killer.Dispose()
    $script:Pipeline.Dispose()
    $status = [System.AppDomain]::CurrentDomain.GetData('snapvisorHost.status')
    $exitCode = 0
    if ($null -ne $script:Failure) {
      # An uncaught terminating error: exit 1, the error on stderr.
      $exitCode = 1
      $cause = $script:Failure.Exception
      if ($cause -is [System.Management.Automation.MethodInvocationException] -and $null -ne $cause.InnerException) { $cause = $cause.InnerException }
      if ($cause -is [System.Management.Automation.IContainsErrorRecord]) { $script:Records.Add(@('Error', $cause.ErrorRecord)) }
      else { $script:Records.Add(@('Error', (New-Object System.Management.Automation.ErrorRecord $cause, 'SnapvisorHost', 'NotSpecified', $null))) }
    } elseif ($status -is [bool]) {
      if (-not $status) { $exitCode = 1 }
    } else {
      # The script stopped before its end: `exit N` set LASTEXITCODE; `return` or `break` did not.
      $last = Get-Variable -Name LASTEXITCODE -Scope Global -ErrorAction SilentlyContinue
      if ($null -ne $last) { $exitCode = [int]$last.Value }
    }
    Restore-SnapvisorHostBaseline

    $text = New-Object System.Text.StringBuilder
    if ($script:Records.Count -gt 0) {
      $null = $text.Append('#< CLIXML').Append([Environment]::NewLine).Append('<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">')
      foreach ($r in $script:Records) {
        if ($r[0] -eq 'Error') {
          # One <S> per line of the error's view, as the console host writes an error.
          foreach ($l in (($r[1] | Out-String) -split '\r?\n')) {
            if ($l -ne '') { $null = $text.Append('<S S="Error">').Append((ConvertTo-SnapvisorHostClixml ($l + "`n"))).Append('</S>') }
          }
        } else {
          $null = $text.Append('<S S="').Append($r[0]).Append('">').Append((ConvertTo-SnapvisorHostClixml $r[1])).Append('</S>')
        }
      }
      $null = $text.Append('</Objs>')
    }
    $null = $text.Append("`n##snapvisor-host $($script:Token) $($script:Seq)`n")
    $script:Err.Write($text.ToString())
    $script:Out.Write("`n##snapvisor-host $($script:Token) $($script:Seq) {""exitCode"":$exitCode}`n")
    $script:Records = $null
    $script:Pipeline = $null
    $script:Failure = $null
  }

  Export-ModuleMember -Function Receive-SnapvisorHostRequest, Get-SnapvisorHostPipeline, Set-SnapvisorHostFailure, Complete-SnapvisorHostRequest
}
Remove-Variable -Name snapvisorHostExit, snapvisorHostKill, snapvisorHostKillAfterMs

# No variable of its own: this loop is the scope chain of every request.
while (Receive-SnapvisorHostRequest) {
  try { $null = (Get-SnapvisorHostPipeline).Invoke() } catch { Set-SnapvisorHostFailure $_ }
  Complete-SnapvisorHostRequest
}
exit 0
