// The console's colours keep WCAG 2.x AA contrast (4.5:1 for normal text) in both schemes: every
// text colour against every background it is drawn on, read from styles.css itself.
import { readFileSync } from 'node:fs';
import t from 'tap';

const css = readFileSync(new URL('../../src/ui/styles.css', import.meta.url), 'utf8');

/** The custom properties of the first block after `marker` (":root {" or the dark scheme's). */
function palette(block: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of block.matchAll(/--([a-z-]+):\s*#([0-9a-f]{6}|[0-9a-f]{3})\b/gi)) {
    const hex = m[2]!.toLowerCase();
    out[m[1]!] = `#${hex.length === 3 ? [...hex].map((c) => c + c).join('') : hex}`;
  }
  return out;
}

function luminance(hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => Number.parseInt(hex.slice(i, i + 2), 16) / 255).map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
}

export function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi! + 0.05) / (lo! + 0.05);
}

const light = palette(css.slice(css.indexOf(':root {'), css.indexOf('}', css.indexOf(':root {'))));
const darkStart = css.indexOf(':root {', css.indexOf('prefers-color-scheme: dark'));
const dark = palette(css.slice(darkStart, css.indexOf('}', darkStart)));

// [text, background]: where each text colour is used.
const PAIRS: Array<[string, string]> = [
  ['text', 'bg'], ['text', 'panel'], ['text', 'sel'],
  ['muted', 'bg'], ['muted', 'panel'],
  ['accent', 'bg'], ['accent', 'panel'], ['accent', 'sel'],
  ['accent-text', 'accent'],
  ['danger', 'panel'], ['danger', 'bg'], ['ok', 'panel'], ['warn', 'panel'],
];

t.test('the known answers of the formula', async (t) => {
  t.equal(contrast('#000000', '#ffffff').toFixed(2), '21.00');
  t.equal(contrast('#777777', '#ffffff').toFixed(2), '4.48', 'the classic just-too-light grey');
});

for (const [scheme, colours] of [['light', light], ['dark', dark]] as const) {
  t.test(`${scheme} scheme: every text colour is at least 4.5:1 on its background`, async (t) => {
    t.ok(Object.keys(colours).length >= 10, `the ${scheme} palette was read (${Object.keys(colours).length} colours)`);
    for (const [fg, bg] of PAIRS) {
      // The dark scheme keeps the light --sel unless it sets its own; both must be there.
      const a = colours[fg] ?? light[fg];
      const b = colours[bg] ?? light[bg];
      t.ok(a && b, `${fg} and ${bg} are defined`);
      const ratio = contrast(a!, b!);
      t.ok(ratio >= 4.5, `${fg} ${a} on ${bg} ${b}: ${ratio.toFixed(2)}:1`);
    }
  });
}
