//! The modules sit in layers and import only downward (README, "Layout of
//! the code"): this reads every file under src/ and fails on an import
//! from a lower layer to a higher one, and on any import cycle between
//! files. Test modules (`#[cfg(test)] mod tests`) are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules by layer, lowest first (as the README's table).
const LAYERS: &[&[&str]] = &[
    &["path", "zones", "progress"],
    &["rpmdb"],
    &["manifest"],
    &["rootfs", "ostree"],
    &["target", "base"],
    &["oci"],
    &["diff", "pkgdiff"],
    &["layout", "checks"],
    &["policy"],
    &["report", "record"],
    &["engine"],
    &["snapshot", "lint", "apply", "commands", "cli"],
];

fn layer(module: &str) -> usize {
    let top = module.split("::").next().unwrap();
    LAYERS
        .iter()
        .position(|l| l.contains(&top))
        .unwrap_or_else(|| panic!("src/{top}: add the module to LAYERS here and to README"))
}

/// Module path (`oci::layer`) → source without its test module.
fn modules() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["main"] || parts == ["lib"] {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            out.insert(parts.join("::"), text);
        }
    }
    out
}

/// The longest module that `path` (`a::b::Item`) names.
fn resolve<'a>(path: &str, modules: &'a BTreeMap<String, String>) -> Option<&'a str> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len())
        .rev()
        .map(|k| segs[..k].join("::"))
        .find_map(|m| modules.get_key_value(&m).map(|(k, _)| k.as_str()))
}

/// `crate::…` paths in `text`, with `use crate::a::{b, c::d}` groups
/// expanded (one level of braces), outside comments.
fn crate_paths(text: &str) -> Vec<String> {
    paths_after(text, "crate::")
}

/// Paths after `prefix` (`crate::` or `super::`), as [`crate_paths`].
fn paths_after(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let code = line.split("//").next().unwrap();
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            rest = &rest[i + prefix.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches(':');
            if rest[end..].starts_with('{') && rest[..end].ends_with("::") {
                let close = rest[end..].find('}').map_or(rest.len(), |j| end + j);
                for item in rest[end + 1..close].split(',') {
                    let item = item.trim().split(" as ").next().unwrap().trim();
                    if !item.is_empty() && item != "self" {
                        out.push(format!("{path}::{item}"));
                    }
                }
            }
            out.push(path.to_string());
        }
    }
    out
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in &modules {
        let entry = deps.entry(module.clone()).or_default();
        // `super::x` in module `a::b` is `a::x`.
        let parent = module.rsplit_once("::").map(|(p, _)| p);
        let supers = paths_after(text, "super::")
            .into_iter()
            .filter_map(|p| parent.map(|parent| format!("{parent}::{p}")));
        for path in crate_paths(text).into_iter().chain(supers) {
            let Some(to) = resolve(&path, &modules) else {
                continue;
            };
            // A module's own children and ancestors are its own business.
            let related = to == module
                || module.starts_with(&format!("{to}::"))
                || to.starts_with(&format!("{module}::"));
            if !related {
                entry.insert(to.to_string());
            }
        }
    }
    deps
}

#[test]
fn modules_import_only_downward() {
    let mut upward = Vec::new();
    for (from, tos) in edges() {
        for to in tos {
            if layer(&to) > layer(&from) {
                upward.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports from a lower layer to a higher one (see LAYERS):\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_import_cycle_between_files() {
    let deps = edges();
    // A file is in a cycle when it reaches itself.
    let mut cyclic = Vec::new();
    for start in deps.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&String> = deps[start].iter().collect();
        while let Some(m) = stack.pop() {
            if m == start {
                cyclic.push(start.clone());
                break;
            }
            if seen.insert(m) {
                stack.extend(deps.get(m).into_iter().flatten());
            }
        }
    }
    assert!(
        cyclic.is_empty(),
        "files in an import cycle: {cyclic:?}\n{deps:#?}"
    );
}

#[test]
fn the_scanner_sees_imports_and_groups() {
    let paths = crate_paths(
        "use crate::checks::{self, Finding, labels::X};\n// crate::commented\nlet x = crate::rootfs::walk(a);\n",
    );
    assert!(paths.contains(&"checks::Finding".to_string()), "{paths:?}");
    assert!(
        paths.contains(&"checks::labels::X".to_string()),
        "{paths:?}"
    );
    assert!(paths.contains(&"rootfs::walk".to_string()), "{paths:?}");
    assert!(!paths.iter().any(|p| p.contains("commented")), "{paths:?}");
}
