/**
 * A link to a VM by id, named by the VM's name once known. Jobs carry only the VM id; each name is
 * asked for once per tab (a page of jobs usually names a handful of VMs), never per row.
 */
import { useEffect, useState } from 'preact/hooks';
import { api, seg } from '../api.ts';
import { href } from '../router.ts';
import type { Vm } from '../types.ts';

const names = new Map<string, Promise<string | null>>();

function nameOf(vmId: string): Promise<string | null> {
  let known = names.get(vmId);
  if (known === undefined) {
    known = api.get<Vm>(`/v1/vms/${seg(vmId)}`).then((vm) => vm.name, () => null);
    names.set(vmId, known);
  }
  return known;
}

export function VmLink({ vmId }: { vmId: string }) {
  const [name, setName] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    void nameOf(vmId).then((n) => { if (live) setName(n); });
    return () => { live = false; };
  }, [vmId]);
  return <a href={href(['vms', vmId])}>{name ?? <code>{vmId.slice(0, 8)}</code>}</a>;
}
