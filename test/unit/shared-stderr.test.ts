import t from 'tap';
import { firstLine } from '../../providers/shared/stderr.ts';

t.test('the first line with text, trimmed; CRs dropped', async (t) => {
  t.equal(firstLine('\n  \r\n  error: no such domain  \nsecond\n'), 'error: no such domain');
  t.equal(firstLine(''), undefined);
  t.equal(firstLine(' \n\t\n'), undefined);
});

t.test('skip: progress lines are not the reason', async (t) => {
  const progress = /^\d+%/;
  t.equal(firstLine('0%...10%...20%\nVBoxManage: error: Machine is locked\n', progress), 'VBoxManage: error: Machine is locked');
  t.equal(firstLine('0%...10%...20%\n', progress), undefined);
  t.equal(firstLine('0%...10%...20%\n'), '0%...10%...20%', 'without skip nothing is skipped');
});
