/**
 * The check that keeps ts/backends/backend.ts and the Rust entry table (crates/kiln-boundary,
 * `for_each_entry!`) in step: every entry of the table must be a method of the `Backend`
 * interface with the same name, the same number of parameters, each parameter of the TypeScript
 * type its kind maps to (Handle, number, boolean, lists, strings, typed arrays or a group's
 * interface), and the same result type; each group's interface must have the group's fields, each
 * of its type. The table's
 * manifest comes from the built addon or WASM module (`boundaryManifest()`), the interface from
 * the TypeScript compiler's own parse of backend.ts.
 */
import ts from 'typescript';

/** One entry of the Rust table as `boundaryManifest()` lists it. */
export interface ManifestEntry {
  name: string;
  /**
   * [JS argument name, TypeScript type, kind] per argument (kinds: crates/kiln-boundary/src/kinds.rs);
   * a group (kinds/groups.rs) adds its fields, [field name, TypeScript type] each.
   */
  args: [string, string, string, [string, string][]?][];
  returns: string;
}

interface Method {
  params: { name: string; type: string }[];
  returns: string;
}

/** The properties of every other interface in backend.ts (the argument groups): name -> field -> type. */
export function backendInterfaces(source: string): Map<string, Map<string, string>> {
  const file = ts.createSourceFile('backend.ts', source, ts.ScriptTarget.Latest, true);
  const interfaces = new Map<string, Map<string, string>>();
  file.forEachChild((node) => {
    if (!ts.isInterfaceDeclaration(node) || node.name.text === 'Backend') return;
    const fields = new Map<string, string>();
    for (const member of node.members) {
      if (ts.isPropertySignature(member) && ts.isIdentifier(member.name)) fields.set(member.name.text, (member.type?.getText(file) ?? 'any') + (member.questionToken ? ' | undefined' : ''));
    }
    interfaces.set(node.name.text, fields);
  });
  return interfaces;
}

/** Every disagreement between a group's fields in the Rust table and its interface in backend.ts. */
function groupMismatches(group: string, fields: [string, string][], interfaces: Map<string, Map<string, string>>): string[] {
  const declared = interfaces.get(group);
  if (!declared) return [`${group}: a group of the Rust table but not an interface in backend.ts`];
  const problems: string[] = [];
  for (const [field, type] of fields) {
    const got = declared.get(field);
    if (got === undefined) problems.push(`${group}: field '${field}' of the Rust table is missing in backend.ts`);
    else if (got !== type) problems.push(`${group}: field '${field}' is ${got} in backend.ts, ${type} in the Rust table`);
  }
  for (const field of declared.keys()) {
    if (!fields.some(([f]) => f === field)) problems.push(`${group}: field '${field}' of backend.ts is not in the Rust table`);
  }
  return problems;
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
        // `seed?: number` is the table's `number | undefined` (an optional kind).
        params: member.parameters.map((p) => ({ name: p.name.getText(file), type: (p.type?.getText(file) ?? 'any') + (p.questionToken ? ' | undefined' : '') })),
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
  const interfaces = backendInterfaces(backendSource);
  const groups = new Map<string, [string, string][]>();
  for (const entry of manifest) for (const [, type, , fields] of entry.args) if (fields) groups.set(type, fields);
  const problems: string[] = [...groups].flatMap(([group, fields]) => groupMismatches(group, fields, interfaces));
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
