// kvm-jobs.test.ts again with the adapter's `sessions: false`: one virsh process per command.
process.env['SNAPVISOR_TEST_KVM_SESSIONS'] = 'off';
await import('./kvm-jobs.test.ts');
