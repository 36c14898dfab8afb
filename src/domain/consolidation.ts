/**
 * Consolidation plan for one VM: what `vm.consolidate` would do. Pure. Today the only action is
 * the hypervisor's own consolidation when it reports that disk chains need it; retention-driven
 * actions join here when policies exist.
 */
import type { Capabilities } from '../../providers/contract.ts';
import type { Vm } from './types.ts';

export interface ConsolidationAction {
  action: 'consolidate-disks';
  reason: string;
}

export interface ConsolidationPlan {
  actions: ConsolidationAction[];
  message: string;
}

export function planConsolidation(vm: Pick<Vm, 'name' | 'consolidationNeeded'>, capabilities: Pick<Capabilities, 'consolidate'>): ConsolidationPlan {
  if (!capabilities.consolidate) return { actions: [], message: 'this target cannot consolidate disks' };
  if (!vm.consolidationNeeded) {
    return { actions: [], message: `nothing to do: the hypervisor reports no disk chains of '${vm.name}' waiting for consolidation` };
  }
  return {
    actions: [{ action: 'consolidate-disks', reason: 'the hypervisor reports that disk chains need consolidation' }],
    message: `would consolidate the disk chains of '${vm.name}'`,
  };
}
