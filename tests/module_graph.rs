//! The crate's module graph has no cycle (issue 7: "no module imports another that
//! imports it back"). CI runs this with the other tests; a new cycle fails the build
//! and prints itself with the file and line of every import on it.
//!
//! How the graph is made:
//! - Every file under `src/` (except `main.rs`, the binary, a crate of its own) is a
//!   module: `src/a.rs` and `src/a/mod.rs` are `a`, `src/a/b.rs` is `a::b`; inline
//!   `mod name { … }` blocks are modules inside their file.
//! - A dependency is a `use` of an item, or a path in code, that starts with `crate::`,
//!   `super::`, `self::`, a child module's name, or a name the module imported. Each is
//!   resolved to the module that DEFINES the item, following `use` re-exports, so
//!   `super::TransportKind` in `sip::builder` is an edge to `sip::inbound`, not to `sip`.
//!   A `use` of a module itself (`use crate::sip::sdp;`) is no edge; the paths that go
//!   through it are. Comments, strings and `$crate` in macros are skipped.
//! - Nodes are modules at the first two levels (`switch`, `sip::dialog`,
//!   `runtime::transport`); deeper modules, such as the inline `mod tests` of
//!   `sip/dialog.rs`, count as their second-level ancestor (the inline `mod tests` of
//!   a top-level file is a second-level node like any other). A top-level module's own file (`src/config/mod.rs`) is a
//!   node of its own, the "parent" of its family (`config`, `config::*`).
//!
//! The rule: every strongly connected component of more than one node is a cycle and
//! fails the test, with one exemption. A component that lies wholly inside one family
//! and contains the family's parent file is the parent and its parts leaning on each
//! other the way the house style asks for (`config/mod.rs` calls each section's
//! `validate`, each section uses the parent's `ConfigError`; Rust gives child modules
//! the parent's private items for this). It is accepted only if, once the parent file
//! is taken out, the children have no cycle among themselves — so two siblings that
//! import each other (`sip::dialog` ↔ `sip::builder`) still fail, as does any cycle
//! that leaves the family. Nothing is approximated: no cycle other than the exempted
//! parent-and-children one can pass.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

// ---- lexing -------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Rust source to identifiers, `::` and single punctuation, without comments, string
/// and char literals, lifetimes, or identifiers after `$` (macro metavariables and
/// `$crate`, which resolve where the macro is used).
fn lex(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let (mut i, mut line) = (0usize, 1usize);
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            loop {
                if i >= chars.len() {
                    break;
                }
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if let Some(len) = raw_string_start(&chars, i) {
            // r"…", r#"…"#, br##"…"##: ends at a quote followed by as many hashes.
            let hashes = len - 1 - usize::from(c == 'b') - 1;
            i += len;
            while i < chars.len() {
                if chars[i] == '"' && (0..hashes).all(|k| at(i + 1 + k) == '#') {
                    i += 1 + hashes;
                    break;
                }
                if chars[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
        } else if c == '"' || (c == 'b' && at(i + 1) == '"') {
            i += if c == 'b' { 2 } else { 1 };
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if at(i) == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' || (c == 'b' && at(i + 1) == '\'') {
            let start = if c == 'b' { i + 1 } else { i };
            if at(start + 1) == '\\' {
                // An escaped char literal: to the closing quote.
                i = start + 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(start + 2) == '\'' {
                i = start + 3;
            } else {
                // A lifetime or label: skip the quote, the name lexes as an identifier
                // that no path rule matches.
                i = start + 1;
            }
        } else if c == '$' {
            i += 1;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = if c == 'r' && at(i + 1) == '#' {
                i + 2
            } else {
                i
            };
            let mut end = start;
            while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                end += 1;
            }
            tokens.push(Token {
                tok: Tok::Ident(chars[start..end].iter().collect()),
                line,
            });
            i = end.max(i + 1);
        } else if c == ':' && at(i + 1) == ':' {
            tokens.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            tokens.push(Token {
                tok: Tok::Punct(c),
                line,
            });
            i += 1;
        }
    }
    tokens
}

/// Length of a raw string's opening (`r"`, `r#"`, `br##"`) at `i`, if one starts there.
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    j += 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    (chars.get(j) == Some(&'"')).then_some(j + 1 - i)
}

// ---- modules, imports and references ------------------------------------------------

type ModPath = Vec<String>;

/// A path as written, with the module it was written in.
#[derive(Clone, Debug)]
struct Reference {
    module: ModPath,
    segments: Vec<String>,
    file: PathBuf,
    line: usize,
    /// From a `use`: a reference to a module itself is then no dependency.
    from_use: bool,
}

#[derive(Default, Debug)]
struct Crate {
    modules: BTreeSet<ModPath>,
    /// Per module, the names its `use` items bring in: alias → path as written.
    imports: HashMap<ModPath, HashMap<String, Vec<String>>>,
    references: Vec<Reference>,
}

fn module_of_file(src: &Path, file: &Path) -> ModPath {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn ident(tokens: &[Token], i: usize) -> Option<&str> {
    match tokens.get(i).map(|t| &t.tok) {
        Some(Tok::Ident(name)) => Some(name),
        _ => None,
    }
}

fn is(tokens: &[Token], i: usize, c: char) -> bool {
    matches!(tokens.get(i).map(|t| &t.tok), Some(Tok::Punct(p)) if *p == c)
}

fn is_sep(tokens: &[Token], i: usize) -> bool {
    matches!(tokens.get(i).map(|t| &t.tok), Some(Tok::PathSep))
}

/// Parses a use tree at `i`; pushes `(path, alias)` leaves (alias `None` for a glob);
/// returns the index after the tree.
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    prefix: &[String],
    leaves: &mut Vec<(Vec<String>, Option<String>)>,
) -> usize {
    let mut path = prefix.to_vec();
    if is_sep(tokens, i) {
        i += 1; // a leading `::`
    }
    loop {
        if is(tokens, i, '{') {
            i += 1;
            while !is(tokens, i, '}') && i < tokens.len() {
                i = use_tree(tokens, i, &path, leaves);
                if is(tokens, i, ',') {
                    i += 1;
                }
            }
            return i + 1;
        }
        if is(tokens, i, '*') {
            leaves.push((path, None));
            return i + 1;
        }
        let Some(name) = ident(tokens, i) else {
            return i;
        };
        i += 1;
        if name == "self" && !path.is_empty() && !is_sep(tokens, i) {
            let alias = path.last().cloned();
            let alias = alias_after(tokens, &mut i).or(alias);
            leaves.push((path, alias));
            return i;
        }
        path.push(name.to_owned());
        if is_sep(tokens, i) {
            i += 1;
            continue;
        }
        let alias = alias_after(tokens, &mut i).or_else(|| Some(name.to_owned()));
        leaves.push((path, alias));
        return i;
    }
}

fn alias_after(tokens: &[Token], i: &mut usize) -> Option<String> {
    if ident(tokens, *i) == Some("as") {
        let alias = ident(tokens, *i + 1).map(str::to_owned);
        *i += 2;
        return alias.filter(|a| a != "_");
    }
    None
}

/// First pass: the modules a file defines (itself and inline `mod x { … }`).
fn inline_modules(tokens: &[Token], file_module: &ModPath, modules: &mut BTreeSet<ModPath>) {
    walk(tokens, file_module, |event| {
        if let Event::Module(path) = event {
            modules.insert(path.clone());
        }
    });
}

enum Event<'a> {
    Module(&'a ModPath),
    /// `(module, index of the token)`.
    Token(&'a ModPath, usize),
}

/// Walks tokens tracking which (inline) module each one is in.
fn walk(tokens: &[Token], file_module: &ModPath, mut on: impl FnMut(Event<'_>)) {
    let mut stack: Vec<(ModPath, usize)> = vec![(file_module.clone(), 0)];
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        if let (Some("mod"), Some(name), true) = (
            ident(tokens, i),
            ident(tokens, i + 1),
            is(tokens, i + 2, '{'),
        ) {
            let mut path = stack.last().expect("module").0.clone();
            path.push(name.to_owned());
            depth += 1;
            stack.push((path, depth));
            on(Event::Module(&stack.last().expect("module").0));
            i += 3;
            continue;
        }
        if is(tokens, i, '{') {
            depth += 1;
        } else if is(tokens, i, '}') {
            if stack.len() > 1 && stack.last().expect("module").1 == depth {
                stack.pop();
            }
            depth = depth.saturating_sub(1);
        }
        on(Event::Token(&stack.last().expect("module").0, i));
        i += 1;
    }
}

/// Second pass: the imports and path references of a file.
fn scan_file(krate: &mut Crate, file: &Path, tokens: &[Token], file_module: &ModPath) {
    let mut skip_until = 0usize;
    let mut found: Vec<(ModPath, usize)> = Vec::new();
    walk(tokens, file_module, |event| {
        if let Event::Token(module, i) = event {
            found.push((module.clone(), i));
        }
    });
    for (module, i) in found {
        if i < skip_until {
            continue;
        }
        if ident(tokens, i) == Some("use") {
            let mut leaves = Vec::new();
            let end = use_tree(tokens, i + 1, &[], &mut leaves);
            skip_until = end;
            for (path, alias) in leaves {
                if let Some(alias) = &alias {
                    krate
                        .imports
                        .entry(module.clone())
                        .or_default()
                        .insert(alias.clone(), path.clone());
                }
                krate.references.push(Reference {
                    module: module.clone(),
                    segments: path,
                    file: file.to_owned(),
                    line: tokens[i].line,
                    from_use: true,
                });
            }
            continue;
        }
        let Some(first) = ident(tokens, i) else {
            continue;
        };
        if !is_sep(tokens, i + 1) || (i > 0 && is_sep(tokens, i - 1)) {
            continue;
        }
        let mut segments = vec![first.to_owned()];
        let mut j = i + 1;
        while is_sep(tokens, j) {
            match ident(tokens, j + 1) {
                Some(name) => {
                    segments.push(name.to_owned());
                    j += 2;
                }
                None => break,
            }
        }
        skip_until = j;
        krate.references.push(Reference {
            module,
            segments,
            file: file.to_owned(),
            line: tokens[i].line,
            from_use: false,
        });
    }
}

fn read_crate(src: &Path) -> Crate {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.retain(|f| f != &src.join("main.rs") && !f.starts_with(src.join("bin")));
    let lexed: Vec<(PathBuf, ModPath, Vec<Token>)> = files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let module = module_of_file(src, &file);
            (file, module, lex(&text))
        })
        .collect();
    let mut krate = Crate::default();
    for (_, module, tokens) in &lexed {
        krate.modules.insert(module.clone());
        inline_modules(tokens, module, &mut krate.modules);
    }
    for (file, module, tokens) in &lexed {
        scan_file(&mut krate, file, tokens, module);
    }
    krate
}

impl Crate {
    /// Where a path written in `module` leads: the module defining the item, and
    /// whether the path names that module itself. `None` for paths outside the crate
    /// (std, other crates, local variables and types).
    fn resolve(
        &self,
        module: &ModPath,
        segments: &[String],
        depth: usize,
    ) -> Option<(ModPath, bool)> {
        if depth > 16 || segments.is_empty() {
            return None;
        }
        let first = segments[0].as_str();
        let absolute: Vec<String> = match first {
            "crate" => segments[1..].to_vec(),
            "self" => module
                .iter()
                .cloned()
                .chain(segments[1..].iter().cloned())
                .collect(),
            "super" => {
                let mut base = module.clone();
                let mut k = 0;
                while segments.get(k).is_some_and(|s| s == "super") {
                    base.pop()?;
                    k += 1;
                }
                base.into_iter()
                    .chain(segments[k..].iter().cloned())
                    .collect()
            }
            _ => {
                let child: ModPath = module.iter().cloned().chain([first.to_owned()]).collect();
                if self.modules.contains(&child) {
                    module
                        .iter()
                        .cloned()
                        .chain(segments.iter().cloned())
                        .collect()
                } else if let Some((owner, target)) = self.import_in_scope(module, first) {
                    // Where the alias leads; the rest of the path goes on from there
                    // only if the alias named a module.
                    let (resolved, alias_is_module) = self.resolve(&owner, &target, depth + 1)?;
                    if alias_is_module {
                        resolved
                            .into_iter()
                            .chain(segments[1..].iter().cloned())
                            .collect()
                    } else {
                        return Some((resolved, false));
                    }
                } else {
                    return None;
                }
            }
        };
        // The longest known module the path starts with.
        let known = (0..=absolute.len())
            .rev()
            .find(|&n| self.modules.contains(&absolute[..n]))?;
        let target: ModPath = absolute[..known].to_vec();
        let rest = &absolute[known..];
        if rest.is_empty() {
            return Some((target, true));
        }
        // A name the module re-exports (or imports, visible to its children): follow it.
        if let Some(path) = self.imports.get(&target).and_then(|m| m.get(&rest[0])) {
            let mut followed = path.clone();
            followed.extend(rest[1..].iter().cloned());
            if let Some(found) = self.resolve(&target, &followed, depth + 1) {
                return Some(found);
            }
        }
        Some((target, false))
    }

    /// An import of `name` visible in `module`: its own, or an enclosing inline
    /// module's in the same file (test modules `use super::*`).
    fn import_in_scope(&self, module: &ModPath, name: &str) -> Option<(ModPath, Vec<String>)> {
        let mut scope = module.clone();
        loop {
            if let Some(path) = self.imports.get(&scope).and_then(|m| m.get(name)) {
                // An import of the name itself (`use foo;` of an external crate) is no lead.
                let names_itself = path.len() == 1 && path[0] == name;
                if names_itself
                    && !self
                        .modules
                        .contains(&[scope.clone(), path.clone()].concat())
                {
                    return None;
                }
                return Some((scope, path.clone()));
            }
            scope.pop()?;
        }
    }
}

// ---- the graph ------------------------------------------------------------------------

/// An edge's evidence: where the import is.
type Evidence = BTreeMap<(String, String), String>;

fn node(module: &ModPath) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module
            .iter()
            .take(2)
            .cloned()
            .collect::<Vec<_>>()
            .join("::")
    }
}

fn graph(krate: &Crate, root: &Path) -> Evidence {
    let mut edges = Evidence::new();
    for reference in &krate.references {
        let Some((target, is_module)) = krate.resolve(&reference.module, &reference.segments, 0)
        else {
            continue;
        };
        if is_module && reference.from_use {
            continue;
        }
        let (from, to) = (node(&reference.module), node(&target));
        if from != to {
            let file = reference
                .file
                .strip_prefix(root)
                .unwrap_or(&reference.file)
                .display()
                .to_string();
            edges.entry((from, to)).or_insert(format!(
                "{file}:{} ({})",
                reference.line,
                reference.segments.join("::")
            ));
        }
    }
    edges
}

/// Strongly connected components (Tarjan), each sorted, in a stable order.
fn components(nodes: &BTreeSet<String>, edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    struct State<'a> {
        next: usize,
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
        succ: HashMap<&'a str, Vec<&'a str>>,
    }
    fn visit<'a>(v: &'a str, s: &mut State<'a>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.succ.get(v).cloned().unwrap_or_default() {
            if !s.index.contains_key(w) {
                visit(w, s);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            component.sort();
            s.out.push(component);
        }
    }
    let mut succ: HashMap<&str, Vec<&str>> = HashMap::new();
    for (a, b) in edges {
        if nodes.contains(a) && nodes.contains(b) {
            succ.entry(a.as_str()).or_default().push(b.as_str());
        }
    }
    let mut state = State {
        next: 0,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
        succ,
    };
    for v in nodes {
        if !state.index.contains_key(v.as_str()) {
            visit(v, &mut state);
        }
    }
    let mut out = state.out;
    out.sort();
    out
}

fn family(node: &str) -> &str {
    node.split("::").next().unwrap_or(node)
}

/// The cycles the rule forbids (see the module doc): components of more than one node,
/// except a family's parent leaning on its own children.
fn forbidden_cycles(edges: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<String> = edges
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let mut forbidden = Vec::new();
    for component in components(&nodes, edges) {
        if component.len() < 2 {
            continue;
        }
        let families: BTreeSet<&str> = component.iter().map(|n| family(n)).collect();
        let parent = families.iter().next().copied().unwrap_or_default();
        if families.len() == 1 && component.iter().any(|n| n == parent) {
            let children: BTreeSet<String> =
                component.iter().filter(|n| *n != parent).cloned().collect();
            forbidden.extend(
                components(&children, edges)
                    .into_iter()
                    .filter(|c| c.len() > 1),
            );
        } else {
            forbidden.push(component);
        }
    }
    forbidden
}

/// One concrete cycle through a component, from its first node back to it.
fn a_cycle(component: &[String], edges: &BTreeSet<(String, String)>) -> Vec<String> {
    let members: BTreeSet<&String> = component.iter().collect();
    let start = &component[0];
    let mut previous: HashMap<&String, &String> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for (a, b) in edges {
            if a != v || !members.contains(b) {
                continue;
            }
            if b == start {
                // Back from `v` to the start, then turned around and closed.
                let mut path = vec![v.clone()];
                let mut at = v;
                while at != start {
                    at = previous[at];
                    path.push(at.clone());
                }
                path.reverse();
                path.push(start.clone());
                return path;
            }
            if !previous.contains_key(b) && b != start {
                previous.insert(b, v);
                queue.push_back(b);
            }
        }
    }
    component.to_vec()
}

#[test]
fn the_module_graph_has_no_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let krate = read_crate(&root.join("src"));
    let evidence = graph(&krate, root);
    let edges: BTreeSet<(String, String)> = evidence.keys().cloned().collect();
    let cycles = forbidden_cycles(&edges);
    let mut report = String::new();
    for component in &cycles {
        report.push_str(&format!("\ncycle among {}:\n", component.join(", ")));
        let cycle = a_cycle(component, &edges);
        for pair in cycle.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let place = evidence
                .get(&(a.clone(), b.clone()))
                .map_or("", String::as_str);
            report.push_str(&format!("  {a} -> {b}    {place}\n"));
        }
        report.push_str("  every import inside this component:\n");
        for ((a, b), place) in &evidence {
            if component.contains(a) && component.contains(b) {
                report.push_str(&format!("    {a} -> {b}    {place}\n"));
            }
        }
    }
    if std::env::var_os("MODULE_GRAPH_DUMP").is_some() {
        for ((a, b), place) in &evidence {
            eprintln!("{a} -> {b}    {place}");
        }
    }
    assert!(
        cycles.is_empty(),
        "the module graph has {} cycle(s); break each by moving the shared type to the \
         module that owns it:\n{report}",
        cycles.len()
    );
}

// ---- the checker checked ---------------------------------------------------------------

fn edge_set(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn the_cycle_finder_on_small_graphs() {
    // A plain cycle across three modules, plus a tail that is no part of it.
    let cycles = forbidden_cycles(&edge_set(&[
        ("call::driver", "runtime::endpoint"),
        ("runtime::endpoint", "api"),
        ("api", "call::driver"),
        ("api", "metrics"),
    ]));
    assert_eq!(cycles, [vec!["api", "call::driver", "runtime::endpoint"]]);
    let cycle = a_cycle(
        &cycles[0],
        &edge_set(&[
            ("call::driver", "runtime::endpoint"),
            ("runtime::endpoint", "api"),
            ("api", "call::driver"),
        ]),
    );
    assert_eq!(cycle, ["api", "call::driver", "runtime::endpoint", "api"]);

    // A parent file and its sections leaning on each other: accepted.
    assert!(
        forbidden_cycles(&edge_set(&[
            ("config", "config::trunks"),
            ("config::trunks", "config"),
            ("config", "config::agents"),
            ("config::agents", "config"),
            ("config::trunks", "sip::trunk"),
        ]))
        .is_empty()
    );
    // Two siblings importing each other: refused even with the parent involved.
    assert_eq!(
        forbidden_cycles(&edge_set(&[
            ("sip::dialog", "sip::builder"),
            ("sip::builder", "sip::dialog"),
            ("sip", "sip::dialog"),
            ("sip::builder", "sip"),
        ])),
        [vec!["sip::builder", "sip::dialog"]]
    );
    // A cycle that leaves the family through the parent file: refused.
    assert_eq!(
        forbidden_cycles(&edge_set(&[
            ("runtime", "config"),
            ("config", "config::trunks"),
            ("config::trunks", "runtime"),
        ])),
        [vec!["config", "config::trunks", "runtime"]]
    );
    // No cycle at all.
    assert!(forbidden_cycles(&edge_set(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
}

#[test]
fn paths_resolve_through_re_exports_and_skip_comments_and_strings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path().join("src");
    let write = |path: &str, text: &str| {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, text).expect("write");
    };
    write("lib.rs", "pub mod sip;\npub mod runtime;\n");
    write(
        "sip/mod.rs",
        "pub mod inbound;\npub mod builder;\npub use inbound::{Inbound, TransportKind};\n",
    );
    write("sip/inbound.rs", "pub enum TransportKind { Udp }\n");
    write(
        "sip/builder.rs",
        "//! Uses crate::runtime::x in a comment only.\n\
         use super::TransportKind;\n\
         const S: &str = \"crate::runtime::y\";\n\
         const R: &str = r#\"crate::runtime::\"z\"\"#;\n\
         fn f<'a>(x: &'a str) -> char { 'c' }\n\
         #[cfg(test)]\nmod tests {\n    use super::*;\n    fn g() { crate::sip::inbound::TransportKind::Udp; }\n}\n",
    );
    write(
        "runtime/mod.rs",
        "pub mod transport;\nuse crate::sip;\nfn h() { let _ = sip::builder::thing(); }\n",
    );
    write("runtime/transport.rs", "use crate::sip::{self, Inbound};\n");
    let krate = read_crate(&src);
    let edges: BTreeSet<(String, String)> = graph(&krate, dir.path()).into_keys().collect();
    assert_eq!(
        edges,
        edge_set(&[
            ("sip", "sip::inbound"),
            ("sip::builder", "sip::inbound"),
            ("runtime", "sip::builder"),
            ("runtime::transport", "sip::inbound"),
        ])
    );
}
