import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Language, type Node, Parser } from 'web-tree-sitter';

/**
 * Offline Bicep reading for the infra tests: tree-sitter-bicep (the grammar compiled to WebAssembly, loaded by
 * web-tree-sitter) gives a real syntax check and a syntax tree to check the templates' structure with. There is
 * no Bicep compiler on this machine, so what only the compiler or Azure can check is listed in README.md, "Deploying to Azure".
 */

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const INFRA = join(ROOT, 'infra');

let parserPromise: Promise<Parser> | undefined;

export function bicepParser(): Promise<Parser> {
  parserPromise ??= (async () => {
    await Parser.init();
    const require = createRequire(import.meta.url);
    const parser = new Parser();
    parser.setLanguage(await Language.load(require.resolve('tree-sitter-bicep/tree-sitter-bicep.wasm')));
    return parser;
  })();
  return parserPromise;
}

/** Files under `dir` (recursively) whose name ends with one of `extensions`, sorted, as absolute paths. */
export function filesUnder(dir: string, extensions: readonly string[]): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path, extensions));
    else if (extensions.some((e) => entry.name.endsWith(e))) out.push(path);
  }
  return out.sort();
}

export const rel = (path: string): string => relative(ROOT, path);

export interface SyntaxProblem {
  /** 1-based. */
  line: number;
  column: number;
  kind: 'ERROR' | 'MISSING';
  text: string;
}

export interface BicepFile {
  path: string;
  source: string;
  root: Node;
  problems: SyntaxProblem[];
}

/** Error and missing nodes, with 1-based positions: empty means the file parses. */
export function syntaxProblems(root: Node): SyntaxProblem[] {
  const problems: SyntaxProblem[] = [];
  const walk = (node: Node): void => {
    if (node.type === 'ERROR' || node.isMissing) {
      problems.push({
        line: node.startPosition.row + 1,
        column: node.startPosition.column + 1,
        kind: node.isMissing ? 'MISSING' : 'ERROR',
        text: node.isMissing ? node.type : node.text.slice(0, 80),
      });
    }
    for (const child of node.children) walk(child);
  };
  walk(root);
  return problems;
}

export async function parseBicepSource(source: string, path = '(inline)'): Promise<BicepFile> {
  const parser = await bicepParser();
  const tree = parser.parse(source);
  if (tree === null) throw new Error(`tree-sitter returned no tree for ${path}`);
  return { path, source, root: tree.rootNode, problems: syntaxProblems(tree.rootNode) };
}

export async function parseBicep(path: string): Promise<BicepFile> {
  return parseBicepSource(readFileSync(path, 'utf8'), path);
}

// ---------------------------------------------------------------------------------------------------------------
// Reading declarations
// ---------------------------------------------------------------------------------------------------------------

const ESCAPES: Readonly<Record<string, string>> = {
  "\\'": "'",
  '\\\\': '\\',
  '\\n': '\n',
  '\\r': '\r',
  '\\t': '\t',
  '\\$': '$',
};

/** The value of a string literal node, or undefined for an interpolated string or another node. */
export function stringLiteral(node: Node | null | undefined): string | undefined {
  if (!node || node.type !== 'string') return undefined;
  if (node.text.startsWith("'''")) return node.text.slice(3, -3);
  let out = '';
  for (const child of node.namedChildren) {
    if (child.type === 'string_content') out += child.text;
    else if (child.type === 'escape_sequence') out += ESCAPES[child.text] ?? child.text;
    else return undefined;
  }
  return out;
}

/** Object node → its properties by key (identifier or string key), in order. */
export function objectProperties(node: Node | null | undefined): Map<string, Node> {
  const out = new Map<string, Node>();
  if (!node || node.type !== 'object') return out;
  for (const prop of node.namedChildren) {
    if (prop.type !== 'object_property') continue;
    const [key, value] = prop.namedChildren;
    if (!key || !value) continue;
    out.set(key.type === 'string' ? (stringLiteral(key) ?? key.text) : key.text, value);
  }
  return out;
}

/** Follows a path of object keys (`properties.incidentConfiguration.createIncident`). */
export function propertyAt(node: Node | null | undefined, path: string): Node | undefined {
  let current: Node | undefined = node ?? undefined;
  for (const key of path.split('.')) {
    current = objectProperties(current).get(key);
    if (!current) return undefined;
  }
  return current;
}

/** Array node → its elements. */
export const arrayElements = (node: Node | null | undefined): Node[] =>
  node?.type === 'array' ? node.namedChildren.filter((n) => n.type !== 'comment') : [];

/** The decorators written above a declaration, by name, with their argument nodes. */
export function decoratorsOf(declaration: Node): Map<string, Node[]> {
  const out = new Map<string, Node[]>();
  let previous = declaration.previousNamedSibling;
  while (previous && (previous.type === 'comment' || previous.type === 'diagnostic_comment')) {
    previous = previous.previousNamedSibling;
  }
  if (!previous || previous.type !== 'decorators') return out;
  for (const decorator of previous.namedChildren) {
    const call = decorator.namedChildren[0];
    if (!call) continue;
    const fn = call.childForFieldName('function');
    const args = call.childForFieldName('arguments');
    if (fn) out.set(fn.text, args ? args.namedChildren : []);
  }
  return out;
}

export const descriptionOf = (declaration: Node): string | undefined =>
  stringLiteral(decoratorsOf(declaration).get('description')?.[0]);

export interface ParamDecl {
  name: string;
  type: string;
  /** The default value node, if any. */
  defaultValue: Node | undefined;
  node: Node;
}

export interface ResourceDecl {
  symbol: string;
  /** `Microsoft.X/y@2024-01-01`. */
  typeAndVersion: string;
  type: string;
  apiVersion: string;
  existing: boolean;
  /** The body object (inside `if (...)` or `[for ...]` when conditional or looped). */
  body: Node | undefined;
  node: Node;
}

export interface Declarations {
  params: Map<string, ParamDecl>;
  variables: Map<string, Node>;
  resources: ResourceDecl[];
  modules: { symbol: string; path: string; body: Node | undefined; node: Node }[];
  outputs: { name: string; node: Node }[];
  imports: { path: string; node: Node }[];
}

function bodyObject(node: Node): Node | undefined {
  for (const child of node.namedChildren) {
    if (child.type === 'object') return child;
    if (child.type === 'if_statement') return child.namedChildren.find((n) => n.type === 'object');
    if (child.type === 'for_statement') return child.childForFieldName('body') ?? undefined;
  }
  return undefined;
}

export function declarations(file: BicepFile): Declarations {
  const out: Declarations = {
    params: new Map(),
    variables: new Map(),
    resources: [],
    modules: [],
    outputs: [],
    imports: [],
  };
  for (const node of file.root.namedChildren) {
    const [first, second, third] = node.namedChildren;
    switch (node.type) {
      case 'parameter_declaration':
        if (first && second)
          out.params.set(first.text, { name: first.text, type: second.text, defaultValue: third, node });
        break;
      case 'variable_declaration':
        if (first && second) out.variables.set(first.text, second);
        break;
      case 'resource_declaration': {
        const typeAndVersion = stringLiteral(second) ?? '';
        const [type = '', apiVersion = ''] = typeAndVersion.split('@');
        out.resources.push({
          symbol: first?.text ?? '',
          typeAndVersion,
          type,
          apiVersion,
          existing: node.children.some((c) => c.type === 'existing'),
          body: bodyObject(node),
          node,
        });
        break;
      }
      case 'module_declaration':
        out.modules.push({
          symbol: first?.text ?? '',
          path: stringLiteral(second) ?? '',
          body: bodyObject(node),
          node,
        });
        break;
      case 'output_declaration':
        if (first) out.outputs.push({ name: first.text, node });
        break;
      case 'import_functionality': {
        const path = node.namedChildren.map((c) => stringLiteral(c)).find((s) => s !== undefined);
        if (path !== undefined) out.imports.push({ path, node });
        break;
      }
    }
  }
  return out;
}

/** Every call of `name(...)` in the tree, with its argument nodes. */
export function callsOf(root: Node, name: string): Node[][] {
  return root
    .descendantsOfType('call_expression')
    .filter((call): call is Node => call !== null && call.childForFieldName('function')?.text === name)
    .map((call) => call.childForFieldName('arguments')?.namedChildren ?? []);
}

/** Text with all whitespace runs collapsed, to compare expressions regardless of line breaks. */
export const squash = (text: string): string =>
  text.replace(/\s+/g, ' ').replace(/\(\s/g, '(').replace(/\s\)/g, ')').trim();
