/**
 * The check that keeps ts/backends/backend.ts and the Rust entry table (crates/kiln-boundary,
 * `for_each_entry!`) in step: every entry of the table must be a method of the `Backend`
 * interface with the same name, the same number of parameters, each parameter of the TypeScript
 * type its kind maps to (Handle, number or boolean), and the same result type. The table's
 * manifest comes from the built addon or WASM module (`boundaryManifest()`), the interface from
 * the TypeScript compiler's own parse of backend.ts.
 */
import ts from 'typescript';

/** One entry of the Rust table as `boundaryManifest()` lists it. */
export interface ManifestEntry {
  name: string;
  /** [JS argument name, TypeScript type, kind] per argument (kinds: crates/kiln-boundary/src/kinds.rs). */
  args: [string, string, string][];
  returns: string;
}

interface Method {
  params: { name: string; type: string }[];
  returns: string;
}

/** The methods of `interface Backend` in `source` (the text of backend.ts). */
export function backendMethods(source: string): Map<string, Method> {
  const file = ts.createSourceFile('backend.ts', source, ts.ScriptTarget.Latest, true);
  const methods = new Map<string, Method>();
  file.forEachChild((node) => {
    if (!ts.isInterfaceDeclaration(node) || node.name.text !== 'Backend') return;
    for (const member of node.members) {
      if (!ts.isMethodSignature(member) || !ts.isIdentifier(member.name)) continue;
      methods.set(member.name.text, {
        params: member.parameters.map((p) => ({ name: p.name.getText(file), type: p.type?.getText(file) ?? 'any' })),
        returns: member.type?.getText(file) ?? 'any',
      });
    }
  });
  return methods;
}

/** Every disagreement between the Rust table and backend.ts, as one readable line each. */
export function contractMismatches(manifest: ManifestEntry[], backendSource: string): string[] {
  const methods = backendMethods(backendSource);
  if (methods.size === 0) return ['backend.ts: no `interface Backend` found'];
  const problems: string[] = [];
  for (const entry of manifest) {
    const m = methods.get(entry.name);
    if (!m) {
      problems.push(`${entry.name}: declared in the Rust table but not a method of Backend in backend.ts`);
      continue;
    }
    if (m.params.length !== entry.args.length) {
      problems.push(`${entry.name}: backend.ts declares ${m.params.length} parameters, the Rust table ${entry.args.length} (${entry.args.map(([n]) => n).join(', ')})`);
      continue;
    }
    entry.args.forEach(([name, type], i) => {
      if (m.params[i].type !== type) {
        problems.push(`${entry.name}: parameter ${i + 1} ('${m.params[i].name}') is ${m.params[i].type} in backend.ts, ${type} in the Rust table ('${name}')`);
      }
    });
    if (m.returns !== entry.returns) {
      problems.push(`${entry.name}: returns ${m.returns} in backend.ts, ${entry.returns} in the Rust table`);
    }
  }
  return problems;
}
