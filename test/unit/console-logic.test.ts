// The console's pure parts, apart from the browser: the event-stream parser it reads /v1/events
// with, the rows it draws a snapshot tree from, and how a job's two copies are merged.
import fc from 'fast-check';
import t from 'tap';
import { addStartedJob, applyJobEvent } from '../../src/ui/job-updates.ts';
import { SseParser } from '../../src/ui/sse-parser.ts';
import { allNodes, treeRows } from '../../src/ui/tree-rows.ts';

t.test('the SSE parser reads what the daemon writes, however the chunks are cut', async (t) => {
  const stream =
    'retry: 3000\n\n' +
    'id: 1\nevent: job\ndata: {"id":"a","name":"x\\ny"}\n\n' +
    ': heartbeat\n\n' +
    'id: 2\r\nevent: snapshot\r\ndata: {"n":"<script>"}\r\n\r\n' +
    'data: line one\ndata: line two\n\n' +
    'event: vm\ndata:no-space\n\n';
  const whole = new SseParser();
  const messages = whole.push(stream);
  t.same(messages, [
    { event: 'job', data: '{"id":"a","name":"x\\ny"}', id: '1' },
    { event: 'snapshot', data: '{"n":"<script>"}', id: '2' },
    { event: 'message', data: 'line one\nline two', id: '2' },
    { event: 'vm', data: 'no-space', id: '2' },
  ]);
  t.equal(whole.retryMs, 3000);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 12 }), (cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const parser = new SseParser();
      const got = [];
      let from = 0;
      for (const p of [...points, stream.length]) {
        got.push(...parser.push(stream.slice(from, p)));
        from = p;
      }
      return JSON.stringify(got) === JSON.stringify(messages);
    }),
  );
});

t.test('a message is given only when its blank line has arrived', async (t) => {
  const parser = new SseParser();
  t.same(parser.push('event: job\ndata: {}\n'), []);
  t.same(parser.push('\n'), [{ event: 'job', data: '{}', id: null }]);
  t.same(parser.push('event: job\n\n'), [], 'an event with no data is dropped, as browsers do');
});

interface N {
  id: string;
  children: N[];
}
const node = (id: string, ...children: N[]): N => ({ id, children });

t.test('tree rows: depth first; only children stay in their parent\'s column, branches indent', async (t) => {
  //  a
  //  ├ b
  //  │ c      (b's only child: straight below it)
  //  └ d
  //    ├ f
  //    └ g
  //  e
  const roots = [node('a', node('b', node('c')), node('d', node('f'), node('g'))), node('e')];
  const rows = treeRows(roots, new Set());
  t.same(rows.map((r) => [r.node.id, r.level, r.columns, r.stemUp, r.stemDown, r.parentId, r.position, r.siblings]), [
    ['a', 0, [], false, true, null, 1, 2],
    ['b', 1, ['elbow'], false, true, 'a', 1, 2],
    ['c', 2, ['line'], true, false, 'b', 1, 1],
    ['d', 1, ['elbow-last'], false, true, 'a', 2, 2],
    ['f', 2, ['none', 'elbow'], false, false, 'd', 1, 2],
    ['g', 2, ['none', 'elbow-last'], false, false, 'd', 2, 2],
    ['e', 0, [], false, false, null, 2, 2],
  ]);
  const collapsed = treeRows(roots, new Set(['b']));
  t.same(collapsed.map((r) => r.node.id), ['a', 'b', 'd', 'f', 'g', 'e']);
  t.equal(collapsed[1]!.expanded, false);
  t.equal(collapsed[1]!.stemDown, false, 'a collapsed node sends no line down');
  t.equal(collapsed[1]!.hasChildren, true);
  t.same(allNodes(roots).map((n) => n.id), ['a', 'b', 'c', 'd', 'f', 'g', 'e']);
});

t.test('a 10,000-deep chain is drawn without recursion', async (t) => {
  let chain = node('n9999');
  for (let i = 9998; i >= 0; i--) chain = node(`n${i}`, chain);
  const rows = treeRows([chain], new Set());
  t.equal(rows.length, 10_000);
  t.equal(rows[9999]!.level, 9999, 'the true depth is kept (aria-level)');
  t.equal(Math.max(...rows.map((r) => r.columns.length)), 0, 'a chain is drawn straight down: no columns at all');
  t.equal(allNodes([chain]).length, 10_000);
});

t.test('every node appears once, under its parent, whatever the tree', async (t) => {
  // A forest as a parent list: node i hangs under one of the nodes before it, or is a root.
  const arbForest = fc.array(fc.nat(), { maxLength: 60 }).map((picks) => {
    const nodes = picks.map((_, i) => node(`n${i}`));
    const roots: N[] = [];
    picks.forEach((pick, i) => {
      const parent = pick % (i + 1);
      if (parent === i) roots.push(nodes[i]!);
      else nodes[parent]!.children.push(nodes[i]!);
    });
    return roots;
  });
  fc.assert(
    fc.property(arbForest, (roots) => {
      const rows = treeRows(roots, new Set());
      const all = allNodes(roots);
      if (rows.length !== all.length) return false;
      const index = new Map(rows.map((r, i) => [r.node.id, i]));
      return rows.every((r, i) => {
        if (r.parentId === null) return r.columns.length === 0;
        const parent = rows[index.get(r.parentId)!]!;
        // Under its parent, one level deeper; one column further right exactly when it has siblings.
        return index.get(r.parentId)! < i && parent.level === r.level - 1 && r.columns.length === parent.columns.length + (r.siblings > 1 ? 1 : 0);
      });
    }),
  );
});

t.test("a job's stream events win over the request's answer, in either order", async (t) => {
  const queued = { id: 'j', state: 'queued', progress: 0 };
  const running = { id: 'j', state: 'running', progress: 40 };
  // The stream first, then the late 202: the 202 must not move the job back.
  t.same(addStartedJob(applyJobEvent([], running), queued), [running]);
  // The 202 first, then the stream.
  t.same(applyJobEvent(addStartedJob([], queued), running), [running]);
  // A retry goes back to queued on the stream: that is news, not staleness.
  const retried = { id: 'j', state: 'queued', progress: 0 };
  t.same(applyJobEvent([running], retried), [retried]);
  t.same(applyJobEvent([{ id: 'k', state: 'succeeded', progress: 100 }], running).map((j) => j.id), ['j', 'k'], 'a new job goes on top');
});
