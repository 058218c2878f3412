//! The house has no circles: no two top-level modules of `src/` import
//! each other, directly or around a loop, and the pure layers stay pure
//! (`protocol/` imports no other module, `route/` only `protocol/`).
//! Read from the source text, so a new import that breaks this fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module of every library file, and the top-level modules it
/// names through `crate::`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(&src).unwrap().to_path_buf();
            if rel.starts_with("bin") {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let first = rel.components().next().unwrap().as_os_str();
            let module = first.to_str().unwrap().trim_end_matches(".rs").to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let deps = graph.entry(module.clone()).or_default();
            for (at, _) in text.match_indices("crate::") {
                let name: String = text[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    deps.insert(name);
                }
            }
        }
    }
    graph
}

#[test]
fn pure_layers_import_only_what_is_below_them() {
    let graph = imports();
    assert!(graph.contains_key("protocol") && graph.contains_key("route"));
    assert_eq!(graph["protocol"], BTreeSet::new(), "protocol/ imports");
    let route: Vec<&String> = graph["route"].iter().collect();
    assert_eq!(route, ["protocol"], "route/ imports");
}

#[test]
fn no_module_imports_itself_around_a_loop() {
    let graph = imports();
    // Depth-first search from every module; a module on the current path
    // met again closes a loop.
    fn visit<'a>(
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        module: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|m| *m == module) {
            panic!("import loop: {} -> {module}", path[at..].join(" -> "));
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for dep in graph.get(module).into_iter().flatten() {
            visit(graph, dep, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(&graph, module, &mut Vec::new(), &mut done);
    }
}
