//! No import circle in any crate of the workspace: within each crate, between the modules of one
//! parent (the top-level modules of `src/`, the files of one module directory), the module graph
//! drawn from `use crate::…`, `use super::…` and `crate::x::` paths in code must have no cycle.
//! Test modules (`#[cfg(test)] mod …`) may reach anywhere and are left out, and so are comments.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// The crates whose sources are read, relative to the workspace root.
const CRATES: [&str; 5] = [
    "rmap-common",
    "rmap-ebpf",
    "rmap-user",
    "xtask",
    "integration-test",
];

/// A module's path below `crate`, e.g. `["export", "csv"]`.
type ModPath = Vec<String>;

#[test]
fn no_import_circle_in_any_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut report = Vec::new();
    for krate in CRATES {
        let graph = Graph::read(&root.join(krate).join("src"));
        let circles = graph.circles();
        println!(
            "{krate}: {} modules, {} edges between siblings, {} circle(s)",
            graph.modules.len(),
            graph.edges.values().map(BTreeSet::len).sum::<usize>(),
            circles.len()
        );
        for c in circles {
            report.push(format!("{krate}: circle: {}", c.join(" <-> ")));
        }
    }
    assert!(report.is_empty(), "import circles:\n{}", report.join("\n"));
}

/// The module graph of one crate.
struct Graph {
    /// Every module that is a file (or a directory's `mod.rs`), test-only ones left out.
    modules: BTreeSet<ModPath>,
    /// Edges between siblings: a module (or one inside it) names its sibling (or one inside it).
    edges: BTreeMap<ModPath, BTreeSet<ModPath>>,
}

impl Graph {
    fn read(src: &Path) -> Self {
        let mut files = Vec::new();
        rust_files(src, &mut files);
        let mut code = BTreeMap::new();
        let mut test_only = BTreeSet::new();
        for file in &files {
            let module = module_of(src, file);
            let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let (text, test_mods) = without_tests(&strip_comments(&text));
            for m in test_mods {
                test_only.insert([module.clone(), vec![m]].concat());
            }
            code.insert(module, text);
        }
        code.retain(|m, _| !test_only.iter().any(|t| m.starts_with(t)));
        let modules: BTreeSet<ModPath> = code.keys().cloned().collect();
        let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
        for (module, text) in &code {
            for target in referenced(module, text) {
                if let Some((from, to)) = sibling_edge(module, &target, &modules) {
                    edges.entry(from).or_default().insert(to);
                }
            }
        }
        Self { modules, edges }
    }

    /// The strongly connected components of more than one module (Tarjan's algorithm).
    fn circles(&self) -> Vec<Vec<String>> {
        let mut t = Tarjan::default();
        for m in &self.modules {
            if !t.index.contains_key(m) {
                t.visit(m, &self.edges);
            }
        }
        t.out
    }
}

#[derive(Default)]
struct Tarjan {
    next: usize,
    index: BTreeMap<ModPath, usize>,
    low: BTreeMap<ModPath, usize>,
    stack: Vec<ModPath>,
    out: Vec<Vec<String>>,
}

impl Tarjan {
    fn visit(&mut self, v: &ModPath, edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) {
        self.index.insert(v.clone(), self.next);
        self.low.insert(v.clone(), self.next);
        self.next += 1;
        self.stack.push(v.clone());
        for w in edges.get(v).into_iter().flatten() {
            if !self.index.contains_key(w) {
                self.visit(w, edges);
                let low = self.low[v].min(self.low[w]);
                self.low.insert(v.clone(), low);
            } else if self.stack.contains(w) {
                let low = self.low[v].min(self.index[w]);
                self.low.insert(v.clone(), low);
            }
        }
        if self.low[v] == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                let done = w == *v;
                component.push(w.join("::"));
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                self.out.push(component);
            }
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `src/export/csv.rs` → `["export", "csv"]`; `mod.rs`, `lib.rs`, `main.rs` name their
/// directory (the crate root is `[]`); a binary under `src/bin/` is a root of its own.
fn module_of(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).expect("file below src");
    let mut parts: ModPath = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return vec![format!("bin/{}", parts[1..].join("/"))];
    }
    if parts
        .last()
        .is_some_and(|p| ["mod", "lib", "main"].contains(&p.as_str()))
    {
        parts.pop();
    }
    parts
}

/// The text without `//` comments (a `//` that starts a line or follows a blank: not one
/// inside a string such as a URL).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| {
            let cut = line
                .match_indices("//")
                .find(|(i, _)| *i == 0 || line[..*i].ends_with(char::is_whitespace))
                .map_or(line.len(), |(i, _)| i);
            &line[..cut]
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text before its first inline `#[cfg(test)] mod … {`, and the names of the file modules
/// declared test-only (`#[cfg(test)] mod name;`).
fn without_tests(text: &str) -> (String, Vec<String>) {
    let mut names = Vec::new();
    let mut rest = text;
    let mut kept = String::new();
    while let Some(at) = rest.find("#[cfg(test)]") {
        kept.push_str(&rest[..at]);
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        let after_pub = after.strip_prefix("pub ").unwrap_or(after).trim_start();
        if let Some(decl) = after_pub.strip_prefix("mod ") {
            let name: String = decl
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if decl[name.len()..].trim_start().starts_with(';') {
                names.push(name);
            } else {
                return (kept, names);
            }
        }
        rest = after;
    }
    kept.push_str(rest);
    (kept, names)
}

/// Every path `module`'s code names through `crate::` or `super::`, as a path from the crate
/// root.
fn referenced(module: &ModPath, text: &str) -> Vec<ModPath> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let Some(at) = use_statement(line) else {
            continue;
        };
        let tree = &text[start + at..];
        let tree = &tree[..tree.find(';').unwrap_or(tree.len())];
        for path in expand(tree) {
            out.extend(resolve(module, &path));
        }
    }
    for (at, _) in text.match_indices("crate::") {
        if text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        out.extend(resolve(module, &path_at(&text[at..])));
    }
    out
}

/// Where the use tree of a line that is a `use` declaration starts (`use `, `pub use `,
/// `pub(crate) use `, after indentation).
fn use_statement(line: &str) -> Option<usize> {
    let trimmed = line.trim_start();
    let mut rest = trimmed;
    if let Some(r) = rest.strip_prefix("pub") {
        rest = r.trim_start();
        if rest.starts_with('(') {
            rest = &rest[rest.find(')')? + 1..];
        }
        rest = rest.trim_start();
    }
    let tree = rest.strip_prefix("use ")?;
    Some(line.len() - tree.len())
}

/// The `a::b::c` path that starts `text`.
fn path_at(text: &str) -> Vec<String> {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len());
    text[..end]
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A use tree (`crate::{a::{self, B}, c}`) as its paths (`crate::a`, `crate::a::B`, `crate::c`).
fn expand(tree: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    expand_into(&[], tree.trim(), &mut out);
    out
}

fn expand_into(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    for part in split_top(tree) {
        if let Some(open) = part.find('{') {
            let head = path_at(part[..open].trim());
            let close = part.rfind('}').filter(|&c| c > open).unwrap_or(part.len());
            expand_into(&[prefix, &head].concat(), &part[open + 1..close], out);
        } else {
            let mut path = prefix.to_vec();
            path.extend(path_at(part).into_iter().filter(|s| s != "self"));
            out.push(path);
        }
    }
}

/// `tree` split at its commas outside braces.
fn split_top(tree: &str) -> Vec<&str> {
    let (mut depth, mut start, mut parts) = (0, 0, Vec::new());
    for (i, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&tree[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// `path` as seen from `module`, from the crate root; `None` when it starts elsewhere (another
/// crate, `std`, a name in scope).
fn resolve(module: &ModPath, path: &[String]) -> Option<ModPath> {
    let (mut base, mut rest) = match path.first().map(String::as_str) {
        Some("crate") => (Vec::new(), &path[1..]),
        Some("super") => (module.clone(), path),
        Some("self") => (module.clone(), &path[1..]),
        _ => return None,
    };
    while rest.first().is_some_and(|s| s == "super") {
        base.pop()?;
        rest = &rest[1..];
    }
    Some([base, rest.to_vec()].concat())
}

/// The edge between the two siblings `from` and `target` lie in (the modules below their
/// deepest common ancestor), if they lie in two and the target's is a module.
fn sibling_edge(from: &ModPath, target: &ModPath, modules: &BTreeSet<ModPath>) -> Option<(ModPath, ModPath)> {
    let common = from.iter().zip(target).take_while(|(a, b)| a == b).count();
    if common >= from.len() || common >= target.len() {
        return None;
    }
    let to = target[..=common].to_vec();
    modules.contains(&to).then(|| (from[..=common].to_vec(), to))
}
