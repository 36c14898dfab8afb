/**
 * Does a selector (a policy's, a snapshot group's) cover a VM. Pure.
 */
import picomatch from 'picomatch';
import type { Selector } from './policy.ts';

export interface SelectableVm {
  id: string;
  name: string;
  targetName: string;
}

/** True when the selector names no field at all: such a selector matches nothing. */
export function isEmptySelector(selector: Selector): boolean {
  return selector.vms === undefined && selector.targets === undefined && selector.namePattern === undefined;
}

/** Compiles once, then tests many VMs. */
export function selectorMatcher(selector: Selector): (vm: SelectableVm) => boolean {
  if (isEmptySelector(selector)) return () => false;
  const vms = selector.vms === undefined ? null : new Set(selector.vms);
  const targets = selector.targets === undefined ? null : new Set(selector.targets);
  // dot: a VM name starting with '.' is still a name, not a hidden file.
  const name = selector.namePattern === undefined ? null : picomatch(selector.namePattern, { dot: true });
  return (vm) => (vms === null || vms.has(vm.id)) && (targets === null || targets.has(vm.targetName)) && (name === null || name(vm.name));
}

/** Why a glob is refused, or null. */
export function namePatternProblem(pattern: string): string | null {
  if (pattern === '') return 'must not be empty';
  try {
    picomatch.makeRe(pattern);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}
