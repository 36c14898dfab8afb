/**
 * Reading vim25 SOAP XML for the responder and its tests: one fast-xml-parser configuration, and
 * `shapeOf`, which reduces a parsed document to its structure (element and attribute names,
 * nesting, repetition) so a responder answer can be compared with a vcsim recording whose ids,
 * times and UUIDs differ. Pure.
 */
import { XMLParser } from 'fast-xml-parser';

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  textNodeName: '#text',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  // Also decodes numeric character references: node-soap writes a newline in a snapshot
  // description as `&#xA;`, which a real server reads as a newline.
  htmlEntities: true,
});

export type XmlNode = string | XmlObject | XmlNode[];
export interface XmlObject {
  [key: string]: XmlNode;
}

export function parseXml(xml: string): XmlObject {
  return parser.parse(xml) as XmlObject;
}

export function isObject(node: XmlNode | undefined): node is XmlObject {
  return typeof node === 'object' && node !== null && !Array.isArray(node);
}

/** One element or many, always as a list (fast-xml-parser makes an array only for repeats). */
export function asList(node: XmlNode | undefined): XmlNode[] {
  if (node === undefined) return [];
  return Array.isArray(node) ? node : [node];
}

/** Text of an element that may carry attributes (`{ '#text': 'vm-1', '@_type': 'VirtualMachine' }`). */
export function textOf(node: XmlNode | undefined): string {
  if (node === undefined) return '';
  if (typeof node === 'string') return node;
  if (Array.isArray(node)) return textOf(node[0]);
  const text = node['#text'];
  return typeof text === 'string' ? text : '';
}

export function child(node: XmlNode | undefined, ...path: string[]): XmlNode | undefined {
  let current: XmlNode | undefined = node;
  for (const key of path) {
    if (!isObject(current)) return undefined;
    current = current[key];
  }
  return current;
}

/** The single element inside `soapenv:Body` (a `…Response` or `soapenv:Fault`) with its name. */
export function bodyOf(doc: XmlObject): { name: string; node: XmlNode } {
  const body = child(doc, 'soapenv:Envelope', 'soapenv:Body');
  if (!isObject(body)) throw new Error('no soapenv:Body');
  const entry = Object.entries(body).find(([key]) => !key.startsWith('@_'));
  if (!entry) throw new Error('empty soapenv:Body');
  return { name: entry[0], node: entry[1] };
}

/**
 * The structure of a parsed node: leaves become '·', attribute values are kept only for the
 * names that carry meaning in vim25 (xsi type attributes and MoRef types), keys are sorted, and
 * repetition is ignored: a repeated element becomes the union of its occurrences' shapes, so one
 * VM and four VMs have the same shape.
 */
export type Shape = string | { [key: string]: Shape };

const MEANINGFUL_ATTRIBUTES = /(^@_(xsi|XMLSchema-instance):type$)|(^@_type$)|(^@_xmlns)/;

export function shapeOf(node: XmlNode): Shape {
  if (typeof node === 'string') return '·';
  if (Array.isArray(node)) {
    const shapes = node.map(shapeOf);
    return shapes.reduce<Shape>((acc, s) => mergeShapes(acc, s), shapes[0] ?? '·');
  }
  const out: Record<string, Shape> = {};
  for (const key of Object.keys(node).sort()) {
    const value = node[key] as XmlNode;
    if (key.startsWith('@_')) out[key] = MEANINGFUL_ATTRIBUTES.test(key) && typeof value === 'string' ? value : '·';
    else out[key] = shapeOf(value);
  }
  return out;
}

function mergeShapes(a: Shape, b: Shape): Shape {
  if (typeof a === 'string' || typeof b === 'string') return a === b ? a : typeof a === 'string' ? b : a;
  const out: Record<string, Shape> = { ...a };
  for (const [key, value] of Object.entries(b)) out[key] = key in out ? mergeShapes(out[key] as Shape, value) : value;
  return Object.fromEntries(Object.entries(out).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
}
