/**
 * Every method that tensor-methods/* declares on the `Tensor` type is installed on the prototype
 * (a declaration without a body would compile and then fail only when a user calls it), and is
 * installed as a class body would be: not enumerable, getters as getters.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { expect, it } from 'vitest';
import { Tensor } from '../../ts/index.js';
import * as kiln from '../../ts/index.js';

const folder = join(import.meta.dirname, '../../ts/tensor-methods');

/** The members declared in `declare module '../tensor.js' { interface Tensor { ... } }` blocks. */
function declaredMembers(): Array<{ name: string; kind: 'method' | 'getter'; file: string }> {
  const out: Array<{ name: string; kind: 'method' | 'getter'; file: string }> = [];
  for (const file of readdirSync(folder).filter((f) => f.endsWith('.ts'))) {
    const source = ts.createSourceFile(file, readFileSync(join(folder, file), 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isInterfaceDeclaration(node) && node.name.text === 'Tensor') {
        for (const m of node.members) {
          if (ts.isMethodSignature(m)) out.push({ name: m.name.getText(source), kind: 'method', file });
          else if (ts.isGetAccessorDeclaration(m)) out.push({ name: m.name.getText(source), kind: 'getter', file });
          else throw new Error(`${file}: unexpected member '${m.getText(source)}' in the Tensor augmentation`);
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return out;
}

it('every declared Tensor method exists on the prototype, not enumerable', () => {
  const members = declaredMembers();
  // the five families: autograd, elementwise, reductions, linear algebra, shape
  expect(members.length).toBeGreaterThanOrEqual(60);
  for (const { name, kind, file } of members) {
    const descriptor = Object.getOwnPropertyDescriptor(Tensor.prototype, name);
    expect(descriptor, `${file}: ${name}`).toBeDefined();
    expect(descriptor!.enumerable, `${file}: ${name}`).toBe(false);
    if (kind === 'method') expect(typeof descriptor!.value, `${file}: ${name}`).toBe('function');
    else expect(typeof descriptor!.get, `${file}: ${name}`).toBe('function');
  }
});

it('attached methods forward to the ops, with `this` as the first input', () => {
  const x = kiln.tensor([[1, -2], [3, 4]]);
  const w = kiln.tensor([[0.5], [-1]]);
  expect(Array.from(x.matmul(w).dataSync())).toEqual(Array.from(kiln.matmul(x, w).dataSync()));
  expect(Array.from(x.relu().sum(1).dataSync())).toEqual([1, 7]);
  expect(Object.keys(x)).not.toContain('matmul');
  const leaf = kiln.tensor([2, 3]).setRequiresGrad();
  expect(leaf.requiresGrad).toBe(true);
  leaf.square().sum().backward();
  expect(Array.from(leaf.grad!.dataSync())).toEqual([4, 6]);
});
