import { createHash } from 'node:crypto';

import type { Node } from 'web-tree-sitter';

import { type Declarations, objectProperties, stringLiteral } from './bicep.js';

/**
 * Evaluates Bicep expressions of a template (its variables, from given parameter values) with ARM's semantics,
 * for exactly the functions and operators the name-cleaning expressions of main.bicep use. Anything else throws,
 * so an expression this evaluator does not understand fails the test instead of passing it by accident.
 * `uniqueString` is a stand-in (13 lower-case characters derived from the arguments), as ARM's is.
 */

export type Value =
  string | number | boolean | Value[] | { [key: string]: Value } | ((...a: Value[]) => Value);

const str = (v: Value): string => {
  if (typeof v !== 'string') throw new TypeError(`expected a string, got ${JSON.stringify(v)}`);
  return v;
};
const num = (v: Value): number => {
  if (typeof v !== 'number') throw new TypeError(`expected a number, got ${JSON.stringify(v)}`);
  return v;
};
const arr = (v: Value): Value[] => {
  if (!Array.isArray(v)) throw new TypeError(`expected an array, got ${JSON.stringify(v)}`);
  return v;
};
const fn = (v: Value): ((...a: Value[]) => Value) => {
  if (typeof v !== 'function') throw new TypeError('expected a lambda');
  return v;
};

const FUNCTIONS: Readonly<Record<string, (...a: Value[]) => Value>> = {
  length: (v) => (typeof v === 'string' || Array.isArray(v) ? v.length : Object.keys(v as object).length),
  range: (start, count) => Array.from({ length: num(count) }, (_, i) => num(start) + i),
  substring: (s, start, length) => {
    const text = str(s);
    const from = num(start);
    const n = length === undefined ? text.length - from : num(length);
    if (from < 0 || n < 0 || from + n > text.length) throw new RangeError('substring out of range');
    return text.slice(from, from + n);
  },
  toLower: (s) => str(s).toLowerCase(),
  contains: (container, item) =>
    typeof container === 'string' ? container.includes(str(item)) : arr(container).includes(item),
  empty: (v) =>
    typeof v === 'string' || Array.isArray(v) ? v.length === 0 : Object.keys(v as object).length === 0,
  take: (v, n) =>
    typeof v === 'string' ? v.slice(0, Math.max(0, num(n))) : arr(v).slice(0, Math.max(0, num(n))),
  endsWith: (s, suffix) => str(s).endsWith(str(suffix)),
  join: (a, delimiter) => arr(a).map(str).join(str(delimiter)),
  map: (a, f) => arr(a).map((x, i) => fn(f)(x, i)),
  filter: (a, f) => arr(a).filter((x, i) => fn(f)(x, i) === true),
  // A stand-in that shows what it was asked for: the resource id of a resource of this deployment.
  resourceId: (type, name) => `resourceId(${str(type)}, ${str(name)})`,
  uniqueString: (...parts) =>
    [...createHash('sha256').update(parts.map(str).join('|')).digest()]
      .slice(0, 13)
      .map((b) => 'abcdefghijklmnopqrstuvwxyz234567'[b % 32])
      .join(''),
};

export interface Scope {
  /** Parameter values (every parameter the evaluated expressions read). */
  params: Readonly<Record<string, Value>>;
  /** Values of variables or calls that stand for the deployment context, e.g. `resourceToken`. */
  given?: Readonly<Record<string, Value>>;
}

export function evaluator(decl: Declarations, scope: Scope): (expression: Node | string) => Value {
  const cache = new Map<string, Value>();
  const variable = (name: string): Value => {
    if (scope.given && name in scope.given) return scope.given[name]!;
    if (name in scope.params) return scope.params[name]!;
    const cached = cache.get(name);
    if (cached !== undefined) return cached;
    const node = decl.variables.get(name);
    if (!node) throw new Error(`unknown name ${name}`);
    const value = evaluate(node, new Map());
    cache.set(name, value);
    return value;
  };

  const evaluate = (node: Node, locals: Map<string, Value>): Value => {
    const sub = (n: Node | null | undefined): Value => {
      if (!n) throw new Error(`missing operand in ${node.text}`);
      return evaluate(n, locals);
    };
    const named = node.namedChildren.filter((c) => c.type !== 'comment');
    switch (node.type) {
      case 'number':
        return Number(node.text);
      case 'boolean':
        return node.text === 'true';
      case 'string': {
        const plain = stringLiteral(node);
        if (plain !== undefined) return plain;
        return named
          .map((c) =>
            c.type === 'interpolation' ? str(sub(c.namedChildren[0])) : (stringLiteral(c) ?? c.text),
          )
          .join('');
      }
      case 'identifier':
        if (locals.has(node.text)) return locals.get(node.text)!;
        return variable(node.text);
      case 'parenthesized_expression':
        return sub(named[0]);
      case 'member_expression': {
        const object = sub(named[0]) as Record<string, Value>;
        const key = named[1]!.text;
        if (!(key in object)) throw new Error(`no property ${key} in ${node.text}`);
        return object[key]!;
      }
      case 'object':
        return Object.fromEntries([...objectProperties(node)].map(([k, v]) => [k, sub(v)]));
      case 'array':
        return named.map(sub);
      case 'ternary_expression':
        return sub(named[0]) === true ? sub(named[1]) : sub(named[2]);
      case 'unary_expression': {
        if (node.children[0]?.text !== '!') throw new Error(`unsupported unary ${node.text}`);
        return !(sub(named[0]) as boolean);
      }
      case 'binary_expression': {
        const op = node.children[1]?.text;
        const [a, b] = [named[0], named[1]];
        if (op === '||') return sub(a) === true || sub(b) === true;
        if (op === '&&') return sub(a) === true && sub(b) === true;
        const [x, y] = [sub(a), sub(b)];
        if (op === '==') return x === y;
        if (op === '!=') return x !== y;
        if (op === '-') return num(x) - num(y);
        if (op === '+') return num(x) + num(y);
        throw new Error(`unsupported operator ${op}`);
      }
      case 'lambda_expression': {
        // `x => body` or `(x, i) => body`: the identifiers before the arrow are the parameters.
        const arrow = node.children.findIndex((c) => c.text === '=>');
        const before = node.children.slice(0, arrow);
        const params = before.flatMap((c) =>
          c.type === 'identifier' ? [c.text] : c.descendantsOfType('identifier').map((d) => d.text),
        );
        const body = node.children.slice(arrow + 1).find((c) => c.isNamed)!;
        return (...args: Value[]) =>
          evaluate(body, new Map([...locals, ...params.map((p, i) => [p, args[i]!] as const)]));
      }
      case 'call_expression': {
        const name = node.childForFieldName('function')?.text ?? '';
        const f = FUNCTIONS[name];
        if (!f) throw new Error(`unsupported function ${name}()`);
        const args = (node.childForFieldName('arguments')?.namedChildren ?? []).map(sub);
        return f(...args);
      }
      default:
        throw new Error(`unsupported expression (${node.type}): ${node.text}`);
    }
  };

  return (expression) =>
    typeof expression === 'string' ? variable(expression) : evaluate(expression, new Map());
}
