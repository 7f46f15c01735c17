//! The layering of kiln-core's modules, checked: no import circle between its files.
//!
//! A circle (device.rs using op parameter types while the ops use device.rs, as there once
//! was) means no file in it can be read, tested or moved alone. This test reads `src/`, resolves
//! every `crate::`, `super::`, `self::` and child-module path to the file that DEFINES the item
//! (following `pub use` re-exports, so `crate::ops::Cell` counts as a use of the recurrent file,
//! not of ops/mod.rs), and fails on any strongly connected group of two or more files.
//!
//! It is a token-level reader, not a Rust parser: enough for this crate's style (no `#[path]`,
//! no macros that generate `use`). `#[cfg(test)]` items are skipped: a test module may use
//! anything. Run `cargo test -p kiln-core --test import_cycles -- --nocapture` to print the
//! figures (files, edges, and each circle's members).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Punct(&'static str),
}

/// Identifiers and the few punctuation marks a path or a `use` tree is made of; comments,
/// strings, chars and attributes' contents other than `cfg(test)` are dropped.
fn tokenize(src: &str) -> Vec<Tok> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'r' && (b.get(i + 1) == Some(&b'"') || (b.get(i + 1) == Some(&b'#') && b.get(i + 2) == Some(&b'"'))) {
            // raw string r"..." or r#"..."#
            let hashes = if b[i + 1] == b'#' { 1 } else { 0 };
            i += 2 + hashes;
            while i < b.len() && !(b[i] == b'"' && (hashes == 0 || b.get(i + 1) == Some(&b'#'))) {
                i += 1;
            }
            i += 1 + hashes;
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == b'\'' {
            // a char literal ('a', '\n', '\u{..}') or a lifetime ('a): only the former is skipped whole
            if b.get(i + 1) == Some(&b'\\') {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            } else if b.get(i + 2) == Some(&b'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(src[start..i].to_string()));
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            out.push(Tok::Punct("::"));
            i += 2;
        } else {
            let p = match c {
                b'{' => Some("{"),
                b'}' => Some("}"),
                b',' => Some(","),
                b';' => Some(";"),
                b'*' => Some("*"),
                b'#' => Some("#"),
                b'[' => Some("["),
                b']' => Some("]"),
                b'(' => Some("("),
                b')' => Some(")"),
                b'!' => Some("!"),
                _ => None,
            };
            if let Some(p) = p {
                out.push(Tok::Punct(p));
            }
            i += 1;
        }
    }
    strip_cfg_test(out)
}

/// Drops every item marked `#[cfg(test)]` (up to its closing brace or semicolon).
fn strip_cfg_test(toks: Vec<Tok>) -> Vec<Tok> {
    let marker = [Tok::Punct("#"), Tok::Punct("["), Tok::Ident("cfg".into()), Tok::Punct("("), Tok::Ident("test".into()), Tok::Punct(")"), Tok::Punct("]")];
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if toks[i..].starts_with(&marker) {
            i += marker.len();
            let mut depth = 0;
            while i < toks.len() {
                match &toks[i] {
                    Tok::Punct("{") => depth += 1,
                    Tok::Punct("}") => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    Tok::Punct(";") if depth == 0 => {
                        i += 1;
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
        } else {
            out.push(toks[i].clone());
            i += 1;
        }
    }
    out
}

/// One `use` leaf: the path, and the name it is bound to here (None for a glob).
struct UseLeaf {
    path: Vec<String>,
    alias: Option<String>,
    public: bool,
}

/// Parses the use tree starting at `toks[*i]` (after `use`), appending leaves under `prefix`.
fn parse_use_tree(toks: &[Tok], i: &mut usize, prefix: Vec<String>, public: bool, out: &mut Vec<UseLeaf>) {
    let mut path = prefix;
    loop {
        match toks.get(*i) {
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                *i += 1;
                if toks.get(*i) == Some(&Tok::Punct("::")) {
                    *i += 1;
                    continue;
                }
                let mut alias = path.last().cloned();
                if toks.get(*i) == Some(&Tok::Ident("as".into())) {
                    if let Some(Tok::Ident(a)) = toks.get(*i + 1) {
                        alias = Some(a.clone());
                    }
                    *i += 2;
                }
                if alias.as_deref() == Some("self") {
                    path.pop();
                    alias = path.last().cloned();
                }
                out.push(UseLeaf { path, alias, public });
                return;
            }
            Some(Tok::Punct("*")) => {
                *i += 1;
                out.push(UseLeaf { path, alias: None, public });
                return;
            }
            Some(Tok::Punct("{")) => {
                *i += 1;
                while toks.get(*i).is_some() && toks.get(*i) != Some(&Tok::Punct("}")) {
                    parse_use_tree(toks, i, path.clone(), public, out);
                    if toks.get(*i) == Some(&Tok::Punct(",")) {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            _ => return,
        }
    }
}

/// What one file says: the modules it declares, the items it defines, its `use` leaves and
/// the other paths it mentions.
#[derive(Default)]
struct FileFacts {
    defines: BTreeSet<String>,
    uses: Vec<UseLeaf>,
    paths: Vec<Vec<String>>,
}

fn read_facts(src: &str) -> FileFacts {
    let toks = tokenize(src);
    let mut f = FileFacts::default();
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Ident(kw) if kw == "use" => {
                let public = i > 0 && (toks[i - 1] == Tok::Ident("pub".into()) || toks[i - 1] == Tok::Punct(")"));
                i += 1;
                parse_use_tree(&toks, &mut i, Vec::new(), public, &mut f.uses);
                continue;
            }
            Tok::Ident(kw) if ["fn", "struct", "enum", "trait", "type", "const", "static", "union"].contains(&kw.as_str()) => {
                if let Some(Tok::Ident(name)) = toks.get(i + 1) {
                    f.defines.insert(name.clone());
                }
            }
            Tok::Ident(kw) if kw == "macro_rules" => {
                if let Some(Tok::Ident(name)) = toks.get(i + 2) {
                    f.defines.insert(name.clone());
                }
            }
            Tok::Ident(first) if toks.get(i + 1) == Some(&Tok::Punct("::")) && (i == 0 || toks[i - 1] != Tok::Punct("::")) => {
                let mut path = vec![first.clone()];
                let mut j = i + 1;
                while toks.get(j) == Some(&Tok::Punct("::")) {
                    match toks.get(j + 1) {
                        Some(Tok::Ident(s)) => path.push(s.clone()),
                        _ => break,
                    }
                    j += 2;
                }
                f.paths.push(path);
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    f
}

/// kiln-core's module tree: module path ("ops::conv") -> file, and each file's facts.
struct Crate {
    files: BTreeMap<String, PathBuf>,
    facts: BTreeMap<String, FileFacts>,
}

fn module_name(src_dir: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src_dir).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod") | Some("lib")) {
        parts.pop();
    }
    parts.join("::")
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn join(module: &str, name: &str) -> String {
    if module.is_empty() { name.to_string() } else { format!("{module}::{name}") }
}

fn parent(module: &str) -> String {
    module.rsplit_once("::").map(|(p, _)| p.to_string()).unwrap_or_default()
}

impl Crate {
    fn load(src_dir: &Path) -> Crate {
        let mut paths = Vec::new();
        collect(src_dir, &mut paths);
        let mut files = BTreeMap::new();
        let mut facts = BTreeMap::new();
        for p in paths {
            let name = module_name(src_dir, &p);
            facts.insert(name.clone(), read_facts(&std::fs::read_to_string(&p).unwrap()));
            files.insert(name, p);
        }
        Crate { files, facts }
    }

    /// The file defining what `path` names, seen from `module`; None for outside the crate.
    fn resolve(&self, module: &str, path: &[String], depth: usize) -> Option<String> {
        if depth > 16 || path.is_empty() {
            return None;
        }
        let (mut at, rest) = match path[0].as_str() {
            "crate" => (String::new(), &path[1..]),
            "self" => (module.to_string(), &path[1..]),
            "super" => {
                let mut at = parent(module);
                let mut k = 1;
                while path.get(k).map(String::as_str) == Some("super") {
                    at = parent(&at);
                    k += 1;
                }
                (at, &path[k..])
            }
            first if self.files.contains_key(&join(module, first)) => (module.to_string(), path),
            // a name this file imported (`use crate::ops;` then `ops::binary(..)`)
            first => match self.facts[module].uses.iter().find(|u| u.alias.as_deref() == Some(first)) {
                Some(leaf) if depth == 0 && leaf.path.first().is_some_and(|p| p == "crate" || p == "super" || p == "self") => {
                    let mut target = leaf.path.clone();
                    target.extend_from_slice(&path[1..]);
                    return self.resolve(module, &target, depth + 1);
                }
                _ => return None, // std::, an extern crate, a local type's associated item
            },
        };
        for (k, seg) in rest.iter().enumerate() {
            let child = join(&at, seg);
            if self.files.contains_key(&child) {
                at = child;
                continue;
            }
            let facts = &self.facts[&at];
            if facts.defines.contains(seg) {
                return Some(at);
            }
            // a re-export or import of that name in `at`: follow it
            if let Some(leaf) = facts.uses.iter().find(|u| u.alias.as_deref() == Some(seg.as_str())) {
                let mut target = leaf.path.clone();
                target.extend_from_slice(&rest[k + 1..]);
                return self.resolve(&at, &target, depth + 1).or(Some(at));
            }
            for glob in facts.uses.iter().filter(|u| u.alias.is_none()) {
                let mut target = glob.path.clone();
                target.extend_from_slice(&rest[k..]);
                if let Some(found) = self.resolve(&at, &target, depth + 1) {
                    return Some(found);
                }
            }
            return Some(at);
        }
        Some(at)
    }

    /// File-level edges: module -> the modules whose items it uses (self-edges dropped).
    fn edges(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut edges = BTreeMap::new();
        for (module, facts) in &self.facts {
            let mut to = BTreeSet::new();
            let use_paths = facts.uses.iter().map(|u| &u.path);
            for path in use_paths.chain(facts.paths.iter()) {
                if let Some(target) = self.resolve(module, path, 0) {
                    // `pub use` lines of a parent naming its own children are aliases, not uses;
                    // they are followed by resolve() when someone uses them.
                    if target != *module {
                        to.insert(target);
                    }
                }
            }
            // A re-export alone is not a dependency of the file that writes it.
            for leaf in facts.uses.iter().filter(|u| u.public) {
                if let Some(target) = self.resolve(module, &leaf.path, 0) {
                    let used_elsewhere = facts.paths.iter().any(|p| self.resolve(module, p, 0).as_ref() == Some(&target));
                    if !used_elsewhere {
                        to.remove(&target);
                    }
                }
            }
            edges.insert(module.clone(), to);
        }
        edges
    }
}

/// Tarjan's strongly connected components; only groups of two or more are returned.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.out.push(group);
            }
        }
    }
    let mut s = State { edges, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on_stack: BTreeSet::new(), next: 0, out: Vec::new() };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The one circle kiln-core keeps, by type rather than by accident: a Tensor holds a Storage
/// whose buffer may be a device's, the Device trait takes Tensors and parameter structs that hold
/// Tensors, a Tensor carries its autograd node, and the backward engine accumulates gradients with
/// the elementwise, reduce and shape ops, which dispatch to the CPU device and its kernels. candle
/// has the same knot (Tensor, Storage, Device). Any other file joining a circle fails the test:
/// an op family (conv, pool, attention, recurrent, graph, loss, batch norm, optim...) must sit
/// above it, as none did on main (10 of them were in its 25-file circle).
fn in_tensor_core(file: &str) -> bool {
    const FILES: &[&str] = &[
        "alloc.rs", "autograd/mod.rs", "autograd/reduce_to.rs", "layout.rs", "storage.rs", "tensor.rs",
        "ops/binary.rs", "ops/creation.rs", "ops/reduce.rs", "ops/shape.rs", "ops/unary.rs",
    ];
    FILES.contains(&file) || file.starts_with("device/") || file.starts_with("params/")
}

/// The source tree to check: kiln-core's own, or KILN_IMPORT_CYCLES_SRC (to measure another
/// checkout, e.g. `git archive main crates/kiln-core/src`).
fn src_dir() -> PathBuf {
    // CARGO_MANIFEST_DIR as cargo sets it when it runs the test, not as it was at compile time: a
    // shared target directory can hold a test binary compiled in another checkout of the crate.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    std::env::var_os("KILN_IMPORT_CYCLES_SRC").map(PathBuf::from).unwrap_or_else(|| manifest_dir.join("src"))
}

fn display(c: &Crate, module: &str) -> String {
    c.files[module].strip_prefix(src_dir()).unwrap().display().to_string()
}

#[test]
fn kiln_core_has_no_import_circle_outside_the_tensor_core() {
    let krate = Crate::load(&src_dir());
    let edges = krate.edges();
    let found = circles(&edges);
    println!("kiln-core: {} files, {} file-to-file edges, {} circle(s)", krate.files.len(), edges.values().map(BTreeSet::len).sum::<usize>(), found.len());
    let mut report = String::new();
    let mut outsiders = Vec::new();
    for group in &found {
        let names: Vec<String> = group.iter().map(|m| display(&krate, m)).collect();
        report += &format!("\n  a circle of {} files: {}", group.len(), names.join(", "));
        for m in group {
            let inside: Vec<String> = edges[m].iter().filter(|t| group.contains(t)).map(|t| display(&krate, t)).collect();
            report += &format!("\n    {} -> {}", display(&krate, m), inside.join(", "));
        }
        outsiders.extend(names.into_iter().filter(|n| !in_tensor_core(n)));
    }
    println!("{report}");
    assert!(outsiders.is_empty(), "these kiln-core files import each other in a circle: {outsiders:?} (parameter types belong in params/, kernels under their device):{report}");
}

/// The layering the circle check protects: parameter structs, the Device trait and the CPU's
/// kernels sit below the ops, so none may use an op module (nor optim.rs, whose update entry
/// point is an op).
#[test]
fn params_and_the_device_trait_use_no_op() {
    let krate = Crate::load(&src_dir());
    let edges = krate.edges();
    let is_op = |m: &str| m == "ops" || m.starts_with("ops::") || m == "optim";
    let mut bad = Vec::new();
    for (m, to) in &edges {
        if m == "device" || m.starts_with("device::") || m.starts_with("params") {
            bad.extend(to.iter().filter(|t| is_op(t)).map(|t| format!("{} -> {}", display(&krate, m), display(&krate, t))));
        }
    }
    assert!(bad.is_empty(), "params/ and device/ must not use ops: {bad:?}");
}

/// The checker itself must see a circle when there is one, and resolve re-exports to the
/// defining file.
#[test]
fn the_checker_sees_a_planted_circle() {
    let dir = std::env::temp_dir().join(format!("kiln-import-cycles-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("ops")).unwrap();
    std::fs::write(dir.join("lib.rs"), "pub mod ops; pub mod device; pub mod tensor;").unwrap();
    std::fs::write(dir.join("ops/mod.rs"), "pub mod conv; pub use conv::Geometry;").unwrap();
    std::fs::write(dir.join("ops/conv.rs"), "use crate::device; pub struct Geometry; fn f(d: &dyn device::Device) {}").unwrap();
    std::fs::write(dir.join("device.rs"), "use crate::ops::Geometry;\n// crate::tensor::Tensor in a comment is no use\npub trait Device { fn c(&self, g: &Geometry); }").unwrap();
    std::fs::write(dir.join("tensor.rs"), "pub struct Tensor; #[cfg(test)] mod tests { use crate::ops::Geometry; }").unwrap();
    let krate = Crate::load(&dir);
    let edges = krate.edges();
    assert_eq!(edges["device"].iter().collect::<Vec<_>>(), vec!["ops::conv"], "a re-export resolves to its defining file");
    assert_eq!(edges["ops::conv"].iter().collect::<Vec<_>>(), vec!["device"], "an imported module's paths are followed");
    assert!(edges["tensor"].is_empty(), "cfg(test) items and comments are not uses");
    assert!(edges["ops"].is_empty(), "a re-export alone is not a use");
    assert_eq!(circles(&edges), vec![vec!["device".to_string(), "ops::conv".to_string()]]);
    std::fs::remove_dir_all(&dir).unwrap();
}
