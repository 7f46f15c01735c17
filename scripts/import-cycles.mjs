// Finds import cycles among the TypeScript modules under ts/ (docs/architecture.md, "TypeScript").
// The module graph comes from the TypeScript parser itself, so every spelling of an import counts:
// `import`, `import type`, `export ... from`, `import x = require()`, and `import()` calls.
// A cycle is a strongly connected component of that graph with more than one module (or a module
// that imports itself). `import type` edges are reported too, but kept apart: they vanish from the
// emitted JavaScript, so they cannot break module loading, only the layering the check protects.
//
//   node scripts/import-cycles.mjs          prints every cycle and exits 1 if there is one
//   node scripts/import-cycles.mjs --json   the same as JSON
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Every .ts / .cts / .mts file below `dir` (declaration files excluded). */
function sourceFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...sourceFiles(path));
    else if (/\.[cm]?ts$/.test(name) && !/\.d\.[cm]?ts$/.test(name)) out.push(path);
  }
  return out;
}

/** The source file a relative specifier names ('./a.js' is written for './a.ts' under NodeNext). */
function resolveSpecifier(from, specifier) {
  if (!specifier.startsWith('.')) return undefined; // a package, not one of ours
  const base = resolve(dirname(from), specifier);
  const stem = base.replace(/\.[cm]?js$/, '');
  const candidates = [base, `${stem}.ts`, `${stem}.cts`, `${stem}.mts`, join(base, 'index.ts')];
  return candidates.find((c) => /\.[cm]?ts$/.test(c) && existsSync(c));
}

/** [{ specifier, typeOnly }] for every import-like construct in one file. */
function importsOf(path) {
  const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true);
  const found = [];
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = ts.isImportDeclaration(node) ? node.importClause : node;
      // `import { type A, type B } from` is as erasable as `import type { A, B } from`.
      const named = ts.isImportDeclaration(node) ? clause?.namedBindings : node.exportClause;
      const allTypeNames = !!named && ts.isNamedImports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly) && !clause?.name;
      const allTypeExports = !!named && ts.isNamedExports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly);
      found.push({ specifier: node.moduleSpecifier.text, typeOnly: !!clause?.isTypeOnly || allTypeNames || allTypeExports });
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const expr = node.moduleReference.expression;
      if (ts.isStringLiteral(expr)) found.push({ specifier: expr.text, typeOnly: node.isTypeOnly });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteral(arg)) found.push({ specifier: arg.text, typeOnly: false });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      found.push({ specifier: node.argument.literal.text, typeOnly: true }); // `import('./x.js').T` in a type
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The module graph of `dir`: Map<file, Map<importedFile, typeOnly>> (typeOnly only if every import of it is). */
export function moduleGraph(dir = join(root, 'ts')) {
  const graph = new Map();
  for (const file of sourceFiles(dir)) {
    const edges = new Map();
    for (const { specifier, typeOnly } of importsOf(file)) {
      const target = resolveSpecifier(file, specifier);
      if (target === undefined || !target.startsWith(dir)) continue;
      edges.set(target, (edges.get(target) ?? true) && typeOnly);
    }
    graph.set(file, edges);
  }
  return graph;
}

/** Strongly connected components with a cycle (Tarjan's algorithm, iterative so depth is no limit). */
function cyclicComponents(graph, followEdge) {
  const index = new Map(), low = new Map(), onStack = new Set(), stack = [], components = [];
  let next = 0;
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const work = [[start, [...graph.get(start).entries()].filter(followEdge).map(([t]) => t), 0]];
    index.set(start, next); low.set(start, next); next++;
    stack.push(start); onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const [node, targets] = frame;
      if (frame[2] < targets.length) {
        const target = targets[frame[2]++];
        if (!graph.has(target)) continue;
        if (!index.has(target)) {
          index.set(target, next); low.set(target, next); next++;
          stack.push(target); onStack.add(target);
          work.push([target, [...graph.get(target).entries()].filter(followEdge).map(([t]) => t), 0]);
        } else if (onStack.has(target)) {
          low.set(node, Math.min(low.get(node), index.get(target)));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1][0];
        low.set(parent, Math.min(low.get(parent), low.get(node)));
      }
      if (low.get(node) === index.get(node)) {
        const component = [];
        let member;
        do {
          member = stack.pop();
          onStack.delete(member);
          component.push(member);
        } while (member !== node);
        const selfLoop = component.length === 1 && targets.includes(node);
        if (component.length > 1 || selfLoop) components.push(component.sort());
      }
    }
  }
  return components;
}

/**
 * The import cycles under `dir` (default ts/): `runtime` counts imports that survive compilation,
 * `all` counts `import type` too. Each entry is a sorted list of paths relative to the repository.
 */
export function importCycles(dir = join(root, 'ts')) {
  const graph = moduleGraph(dir);
  const rel = (components) => components.map((c) => c.map((f) => relative(root, f)));
  return {
    modules: graph.size,
    runtime: rel(cyclicComponents(graph, ([, typeOnly]) => !typeOnly)),
    all: rel(cyclicComponents(graph, () => true)),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = importCycles();
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    console.log(`${result.modules} modules under ts/`);
    for (const [label, cycles] of [['runtime imports', result.runtime], ['all imports (import type included)', result.all]]) {
      console.log(`${label}: ${cycles.length} cycle(s)`);
      for (const c of cycles) console.log(`  ${c.length} modules: ${c.join(' ')}`);
    }
  }
  process.exitCode = result.all.length > 0 ? 1 : 0;
}
