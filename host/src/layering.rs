//! The crate's layering, checked: each top-level module may use only the modules below it.
//!
//! `runtime` knows nothing of storage or HTTP; `platform` stands on it; the centres stack
//! `ops` < `warehouse` < `plugins` < `ingest` < `models` < `pipelines` (an event the warehouse
//! publishes, a sample the alerts take, a sink the hooks deliver to: where a lower centre needs
//! an upper one, it gets a trait object or a closure at construction, never an import); the API,
//! the client, the configuration, the server that assembles it all and the CLI come last.

use std::collections::BTreeMap;
use std::path::Path;

/// Top-level modules from the bottom up; a module may use those on earlier lines.
const LAYERS: &[&[&str]] = &[
    &["runtime", "bundled"],
    &["platform"],
    &["ops"],
    &["warehouse"],
    &["plugins"],
    &["ingest"],
    &["models"],
    &["pipelines"],
    &["api"],
    &["client", "config"],
    &["server"],
    &["cli"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// `crate::NAME` paths a source file names, by NAME.
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        found.push(name);
    }
    found
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut against: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let top = top.trim_end_matches(".rs").to_string();
        let Some(own) = layer(&top) else {
            assert!(
                ["lib", "main", "layering"].contains(&top.as_str()),
                "{} is in no layer: add its module to LAYERS",
                rel.display()
            );
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for used in crate_paths(&text) {
            if let Some(l) = layer(&used)
                && l > own
            {
                against
                    .entry(rel.display().to_string())
                    .or_default()
                    .push(used);
            }
        }
    }
    assert!(
        against.is_empty(),
        "imports against the layering (file: the upper modules it uses): {against:?}"
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    // The positive control: the parser finds the module a path names.
    assert_eq!(
        crate_paths("use crate::plugins::Registry; x = crate::runtime::Limits::default();"),
        ["plugins", "runtime"]
    );
    assert!(layer("plugins") > layer("platform"));
}
