$module = Get-Module -ListAvailable -Name Hyper-V | Sort-Object Version -Descending | Select-Object -First 1
if (-not $module) { Stop-Snapvisor 'unsupported' 'the Hyper-V PowerShell module is not installed on this host' }
Out-Snapvisor @{ module = $module.Version.ToString(); powershell = $PSVersionTable.PSVersion.ToString() }
