// Types of the Hyper-V lab simulator (test/labs/hyperv). The enums and the exception carry the real
// names and integer values of the Hyper-V module (reference /work/shared/reference/hyperv.md §2.5, §2.9, §3),
// so ConvertTo-Json, -is/-as checks and [enum] casts in a client script behave as on a Windows host.
// `Snapvisor.HyperVSim.Support` is the simulator's own plumbing (not a Hyper-V type).
// lab.ts compiles this file once (Add-Type -OutputAssembly, cached by the source's hash); the module
// loads the DLL, falling back to compiling in-process (seconds) when the DLL is absent.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text.Json;
using System.IO;
using System.Management.Automation;
using System.Reflection;
using System.Threading;

namespace Microsoft.HyperV.PowerShell
{
    public enum VMState
    {
        Other = 1, Running = 2, Off = 3, Stopping = 4, Saved = 6, Paused = 9, Starting = 10, Reset = 11,
        Saving = 32773, Pausing = 32776, Resuming = 32777, FastSaved = 32779, FastSaving = 32780,
        ForceShutdown = 32781, ForceReboot = 32782, Hibernated = 32783, ComponentServicing = 32784,
        RunningCritical = 32785, OffCritical = 32786, StoppingCritical = 32787, SavedCritical = 32788,
        PausedCritical = 32789, StartingCritical = 32790, ResetCritical = 32791, SavingCritical = 32792,
        PausingCritical = 32793, ResumingCritical = 32794, FastSavedCritical = 32795, FastSavingCritical = 32796,
    }

    public enum VMOperationalStatus
    {
        Ok = 2, Degraded = 3, PredictiveFailure = 5, InService = 11, Dormant = 15, SupportingEntityInError = 16,
        ApplyingSnapshot = 23769, // sic: the module's enum says 23769, WMI says 32769 (reference §2.5)
        CreatingSnapshot = 32768, DeletingSnapshot = 32770, WaitingToStart = 32771, MergingDisks = 32772,
        ExportingVirtualMachine = 32773, MigratingVirtualMachine = 32774, BackingUpVirtualMachine = 32776,
        ModifyingUpVirtualMachine = 32777, StorageMigrationPhaseOne = 32778, StorageMigrationPhaseTwo = 32779,
        MigratingPlannedVm = 32780, CheckingCompatibility = 32781, ApplicationCriticalState = 32782,
        CommunicationTimedOut = 32783, CommunicationFailed = 32784, NoIommu = 32785, NoIovSupportInNic = 32786,
        SwitchNotInIovMode = 32787, IovBlockedByPolicy = 32788, IovNoAvailResources = 32789,
        IovGuestDriversNeeded = 32790, CriticalIoError = 32795,
    }

    public enum CheckpointType { Disabled = 2, Production = 3, ProductionOnly = 4, Standard = 5 }

    public enum SnapshotType { Standard = 0, Recovery = 1, Planned = 2, Missing = 5, Replica = 6, AppConsistentReplica = 7, SyncedReplica = 8 }

    public enum ControllerType { IDE = 0, SCSI = 1, PMEM = 2 }

    public class VirtualizationException : Exception
    {
        public VirtualizationException() { }
        public VirtualizationException(string message) : base(message) { }
        public VirtualizationException(string message, Exception inner) : base(message, inner) { }
    }
}

namespace Microsoft.Vhd.PowerShell
{
    public enum VhdType { Unknown = 0, Fixed = 2, Dynamic = 3, Differencing = 4 }

    public enum VhdFormat { Unknown = 0, VHD = 2, VHDX = 3, VHDSet = 4 }
}

namespace Snapvisor.HyperVSim
{
    public static class Support
    {
        private static readonly FieldInfo FqidField =
            typeof(ErrorRecord).GetField("_serializedFullyQualifiedErrorId", BindingFlags.NonPublic | BindingFlags.Instance);

        /// <summary>
        /// An ErrorRecord whose FullyQualifiedErrorId is exactly `fullyQualifiedErrorId`.
        /// For a script function PowerShell appends ",&lt;function name&gt;" to the error id (it appends the
        /// implementing type's full name for a compiled cmdlet, which is where the real
        /// "ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.GetVMSnapshot" comes from). ErrorRecord
        /// returns a preset "serialized" id verbatim (the field remoting uses), and its copy constructor
        /// keeps it, so the id survives ThrowTerminatingError/WriteError and the $ErrorActionPreference=Stop
        /// wrapping. CategoryInfo (activity = the function's name) is untouched.
        /// </summary>
        public static ErrorRecord NewError(string message, string fullyQualifiedErrorId, ErrorCategory category, object target)
        {
            int comma = fullyQualifiedErrorId.IndexOf(',');
            string errorId = comma < 0 ? fullyQualifiedErrorId : fullyQualifiedErrorId.Substring(0, comma);
            var record = new ErrorRecord(new Microsoft.HyperV.PowerShell.VirtualizationException(message), errorId, category, target);
            if (FqidField != null) FqidField.SetValue(record, fullyQualifiedErrorId);
            return record;
        }

        /// <summary>
        /// Exclusive lock on `path` (FileShare.None = flock(LOCK_EX) on Linux, the same lock the
        /// `flock` tool takes), retried with jitter until `timeoutMs`. Dispose releases it; so does process death.
        /// </summary>
        public static FileStream AcquireLock(string path, int timeoutMs)
        {
            var watch = Stopwatch.StartNew();
            var random = new Random();
            while (true)
            {
                try
                {
                    return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                }
                catch (IOException) when (watch.ElapsedMilliseconds < timeoutMs)
                {
                    Thread.Sleep(3 + random.Next(12));
                }
            }
        }

        // JSON without Microsoft.PowerShell.Utility: importing that module (ConvertFrom-Json/ConvertTo-Json)
        // costs ~180 ms per process, as much as the rest of the simulator together.

        /// <summary>JSON text → Hashtable (case-sensitive keys) / object[] / string / long / double / bool / null. Strings stay strings (no date guessing).</summary>
        public static object ParseJson(string text)
        {
            using (var doc = JsonDocument.Parse(text)) return FromElement(doc.RootElement);
        }

        private static object FromElement(JsonElement e)
        {
            switch (e.ValueKind)
            {
                case JsonValueKind.Object:
                    var h = new Hashtable();
                    foreach (var p in e.EnumerateObject()) h[p.Name] = FromElement(p.Value);
                    return h;
                case JsonValueKind.Array:
                    return e.EnumerateArray().Select(FromElement).ToArray();
                case JsonValueKind.String: return e.GetString();
                case JsonValueKind.Number:
                    long l; if (e.TryGetInt64(out l)) return l;
                    return e.GetDouble();
                case JsonValueKind.True: return true;
                case JsonValueKind.False: return false;
                default: return null;
            }
        }

        /// <summary>Hashtables, arrays and scalars (PSObject-wrapped or not) → indented JSON.</summary>
        public static string ToJson(object value)
        {
            using (var stream = new MemoryStream())
            {
                using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
                    Write(w, value);
                return System.Text.Encoding.UTF8.GetString(stream.ToArray());
            }
        }

        private static void Write(Utf8JsonWriter w, object v)
        {
            if (v is PSObject pso) v = pso.BaseObject;
            switch (v)
            {
                case null: w.WriteNullValue(); return;
                case string s: w.WriteStringValue(s); return;
                case bool b: w.WriteBooleanValue(b); return;
                case Guid g: w.WriteStringValue(g.ToString()); return;
                case Enum en: w.WriteStringValue(en.ToString()); return;
                case int i: w.WriteNumberValue(i); return;
                case long l: w.WriteNumberValue(l); return;
                case double d: w.WriteNumberValue(d); return;
                case decimal m: w.WriteNumberValue(m); return;
                case IDictionary dict:
                    w.WriteStartObject();
                    foreach (DictionaryEntry kv in dict) { w.WritePropertyName(kv.Key.ToString()); Write(w, kv.Value); }
                    w.WriteEndObject();
                    return;
                case IEnumerable list:
                    w.WriteStartArray();
                    foreach (var item in list) Write(w, item);
                    w.WriteEndArray();
                    return;
                default:
                    if (v is IConvertible c) { w.WriteNumberValue(Convert.ToDouble(c, System.Globalization.CultureInfo.InvariantCulture)); return; }
                    w.WriteStringValue(v.ToString());
                    return;
            }
        }

        /// <summary>Stable sort of dictionaries by one string key (ordinal).</summary>
        public static object[] SortBy(object[] items, string key)
        {
            if (items == null) return new object[0];
            return items.Where(x => x != null).OrderBy(x => (string)((IDictionary)(x is PSObject p ? p.BaseObject : x))[key], StringComparer.Ordinal).ToArray();
        }

        // Objects the cmdlets return: PSCustomObjects (so ConvertTo-Json/Select-Object see plain
        // properties) whose values carry the real .NET types, with the real type name first in TypeNames.
        // Built here rather than with [pscustomobject]@{…} in script: that costs ~90 ms on a cold process.

        public static DateTime ParseUtc(object iso)
        {
            return DateTime.Parse((string)iso, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.RoundtripKind);
        }

        private static PSObject NewObject(string typeName, params object[] pairs)
        {
            var o = new PSObject();
            o.TypeNames.Insert(0, typeName);
            for (int i = 0; i < pairs.Length; i += 2) o.Properties.Add(new PSNoteProperty((string)pairs[i], pairs[i + 1]));
            return o;
        }

        private static string Str(IDictionary h, string key) { var v = h[key]; if (v is PSObject p) v = p.BaseObject; return v == null ? null : v.ToString(); }
        private static bool Bool(IDictionary h, string key) { var v = h[key]; if (v is PSObject p) v = p.BaseObject; return v is bool b ? b : (v != null && Convert.ToBoolean(v)); }
        private static int Int(IDictionary h, string key) { var v = h[key]; if (v is PSObject p) v = p.BaseObject; return v == null ? 0 : Convert.ToInt32(v); }
        private static T EnumOf<T>(IDictionary h, string key) where T : struct { return (T)Enum.Parse(typeof(T), Str(h, key), true); }
        private static Guid? NullableGuid(IDictionary h, string key) { var s = Str(h, key); return string.IsNullOrEmpty(s) ? (Guid?)null : Guid.Parse(s); }

        public static PSObject NewVM(IDictionary vm, bool merging, string parentName, string computerName)
        {
            var state = EnumOf<Microsoft.HyperV.PowerShell.VMState>(vm, "state");
            var uptime = TimeSpan.Zero;
            if ((state == Microsoft.HyperV.PowerShell.VMState.Running || state == Microsoft.HyperV.PowerShell.VMState.Paused) && Str(vm, "started") != null)
                uptime = TimeSpan.FromSeconds(Math.Floor((DateTime.UtcNow - ParseUtc(Str(vm, "started"))).TotalSeconds));
            var ok = Microsoft.HyperV.PowerShell.VMOperationalStatus.Ok;
            var mergingDisks = Microsoft.HyperV.PowerShell.VMOperationalStatus.MergingDisks;
            var id = Guid.Parse(Str(vm, "id"));
            if (parentName == "") parentName = null; // PowerShell passes $null to a string parameter as ""
            return NewObject("Microsoft.HyperV.PowerShell.VirtualMachine",
                "Name", Str(vm, "name"),
                "Id", id,
                "VMId", id,
                "VMName", Str(vm, "name"),
                "State", state,
                // reference §2.5: while merging [2, 32772] / 32772 / "Merging disks"; else [2] / null / "Operating normally"
                "Status", merging ? "Merging disks" : "Operating normally",
                "OperationalStatus", merging ? new[] { ok, mergingDisks } : new[] { ok },
                "PrimaryOperationalStatus", ok,
                "SecondaryOperationalStatus", merging ? (Microsoft.HyperV.PowerShell.VMOperationalStatus?)mergingDisks : null,
                "CheckpointType", EnumOf<Microsoft.HyperV.PowerShell.CheckpointType>(vm, "checkpointType"),
                "AutomaticCheckpointsEnabled", Bool(vm, "automaticCheckpointsEnabled"),
                "ParentSnapshotId", NullableGuid(vm, "parentSnapshotId"),
                "ParentSnapshotName", parentName,
                "Notes", Str(vm, "notes") ?? "",
                "Path", Str(vm, "path"),
                "ConfigurationLocation", Str(vm, "path"),
                "SnapshotFileLocation", Str(vm, "path"),
                "Generation", Int(vm, "generation"),
                "Uptime", uptime,
                "CreationTime", ParseUtc(Str(vm, "created")).ToLocalTime(),
                "ComputerName", computerName,
                "IsDeleted", false);
        }

        public static PSObject NewSnapshot(IDictionary snap, IDictionary vm, string parentName, string computerName)
        {
            if (parentName == "") parentName = null; // PowerShell passes $null to a string parameter as ""
            return NewObject("Microsoft.HyperV.PowerShell.VMSnapshot",
                "Id", Guid.Parse(Str(snap, "id")),
                "Name", Str(snap, "name"),
                "VMName", Str(vm, "name"),
                "VMId", Guid.Parse(Str(snap, "vmId")),
                "ParentSnapshotId", NullableGuid(snap, "parentId"),
                "ParentSnapshotName", parentName,
                "SnapshotType", EnumOf<Microsoft.HyperV.PowerShell.SnapshotType>(snap, "snapshotType"),
                // reference §2.2: Saved (6) when the checkpoint holds memory, else Off (3)
                "State", Bool(snap, "hasMemory") ? Microsoft.HyperV.PowerShell.VMState.Saved : Microsoft.HyperV.PowerShell.VMState.Off,
                "CreationTime", ParseUtc(Str(snap, "created")).ToLocalTime(),
                "Notes", Str(snap, "notes") ?? "",
                "IsAutomaticCheckpoint", Bool(snap, "isAutomatic"),
                "Path", Str(vm, "path"),
                "Generation", Int(vm, "generation"),
                "ComputerName", computerName,
                "IsDeleted", false);
        }

        public static PSObject NewDrive(IDictionary vm, IDictionary disk, IDictionary snap, string computerName)
        {
            return NewObject("Microsoft.HyperV.PowerShell.HardDiskDrive",
                "Name", "Hard Drive",
                "Path", Str(disk, "path"),
                "ControllerType", EnumOf<Microsoft.HyperV.PowerShell.ControllerType>(disk, "controllerType"),
                "ControllerNumber", Int(disk, "controllerNumber"),
                "ControllerLocation", Int(disk, "controllerLocation"),
                "DiskNumber", null,
                "VMId", Guid.Parse(Str(vm, "id")),
                "VMName", Str(vm, "name"),
                "VMSnapshotId", snap == null ? Guid.Empty : Guid.Parse(Str(snap, "id")),
                "VMSnapshotName", snap == null ? "" : Str(snap, "name"),
                "ComputerName", computerName,
                "IsDeleted", false);
        }

        public static PSObject NewVhd(string path, string parentPath, bool attached, string diskIdentifier, ulong size, string computerName)
        {
            if (parentPath == "") parentPath = null;
            string ext = Path.GetExtension(path).ToLowerInvariant();
            var format = ext == ".vhdx" || ext == ".avhdx" ? Microsoft.Vhd.PowerShell.VhdFormat.VHDX
                : ext == ".vhd" || ext == ".avhd" ? Microsoft.Vhd.PowerShell.VhdFormat.VHD
                : ext == ".vhds" ? Microsoft.Vhd.PowerShell.VhdFormat.VHDSet : Microsoft.Vhd.PowerShell.VhdFormat.Unknown;
            // reference §2.9: Differencing (4) for a child disk, Dynamic (3) for the base.
            var type = parentPath != null || ext == ".avhdx" || ext == ".avhd" ? Microsoft.Vhd.PowerShell.VhdType.Differencing : Microsoft.Vhd.PowerShell.VhdType.Dynamic;
            return NewObject("Microsoft.Vhd.PowerShell.VirtualHardDisk",
                "ComputerName", computerName,
                "Path", path,
                "VhdFormat", format,
                "VhdType", type,
                "FileSize", (ulong)new FileInfo(path).Length,
                "Size", size,
                "MinimumSize", null,
                "LogicalSectorSize", (uint)512,
                "PhysicalSectorSize", (uint)4096,
                "BlockSize", (uint)33554432,
                "ParentPath", parentPath,
                "DiskIdentifier", diskIdentifier,
                "FragmentationPercentage", null,
                "Alignment", (uint)1,
                "Attached", attached,
                "DiskNumber", null,
                "IsPMEMCompatible", false,
                "AddressAbstractionType", 0,
                "Number", null);
        }

        /// <summary>Write `text` as UTF-8 (no BOM) to `path` atomically: temp file + rename.</summary>
        public static void WriteAtomic(string path, string text)
        {
            string tmp = path + ".tmp" + Environment.ProcessId;
            File.WriteAllText(tmp, text, new System.Text.UTF8Encoding(false));
            File.Move(tmp, path, true);
        }
    }
}
