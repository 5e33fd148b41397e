//! The crate's layers only look down: no module refers to a module above it.
//!
//! The order below is the one ARCHITECTURE.md ("Layers") states. Each source file belongs to
//! the entry with the longest module-path prefix matching it, and every `crate::…` path it
//! names (in `use` lines, grouped `use crate::{…}` lists, and inline paths, tests included)
//! must resolve to an entry at the same place or lower. `super::` paths are not followed: the
//! source has no `super::super`, so they stay inside their own module tree; a path from one
//! entry into another of the same tree (say `btp::packet` into `btp::session`) is written with
//! `crate::` so that it is checked.
//!
//! This reads the source text rather than the compiler's view, so it errs on the side of
//! reporting: a path in a doc comment counts, which keeps the docs honest as well.

use std::fs;
use std::path::{Path, PathBuf};

/// Lowest first. A module may refer only to itself and to the entries before it.
const LAYERS: &[&str] = &[
    // The wire: ILP packets, OER, addresses; the BTP codec.
    "ilp",
    "btp::packet",
    // Small shared handles, the process around the node, and the vocabulary every layer
    // speaks: the journal's events.
    "health",
    "process",
    "journal::wide",
    "journal::event",
    // Counting and reporting, then the configuration.
    "metrics",
    "internal_events",
    "fault",
    "config",
    // The event journal (storage, commit log, retention).
    "journal",
    // The settlement rules (ledger arithmetic, claims, the EVM codec) and the chain executor.
    "settlement",
    // Live exchange-rate sources (they feed the forwarder through a trait it implements).
    "rates",
    // Projections of the journal: balances, recovery, TigerBeetle, the settlement audit.
    "projections",
    // The forwarder, then the BTP sessions that feed it.
    "pipeline",
    "btp",
    // Read sides and operators' surfaces.
    "explorer",
    "http",
    // Composition: the node, and the programs built on it.
    "node",
    "demo",
    "loadgen",
    "cli",
];

/// Known exceptions, each with its reason. Empty is the goal, and the state.
const ALLOWED: &[(&str, &str)] = &[];

fn rank(module: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .filter(|(_, layer)| module == **layer || module.starts_with(&format!("{layer}::")))
        .max_by_key(|(_, layer)| layer.len())
        .map(|(index, layer)| (index, *layer))
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `src/lib.rs` and `src/main.rs` are the root.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_string());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            out.push(path);
        }
    }
}

/// Every module path the text names through `crate::`, expanding one level of `{…}` groups.
fn crate_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
        rest = &rest[at + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for item in split_top_level(&group[..end]) {
                paths.push(path_prefix(item.trim()));
            }
        } else {
            paths.push(path_prefix(rest));
        }
    }
    paths.into_iter().filter(|path| !path.is_empty()).collect()
}

fn matching_brace(text: &str) -> usize {
    let mut depth = 0;
    for (index, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return index,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (index, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
}

/// `a::b::{c, d}` or `a::b::Type` or `a::b` → the lowercase module segments, `a::b`.
fn path_prefix(text: &str) -> String {
    let mut segments = Vec::new();
    let mut rest = text;
    loop {
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        let segment = &rest[..end];
        if segment.is_empty() || segment.starts_with(|c: char| c.is_uppercase()) || segment == "self" {
            break;
        }
        segments.push(segment.to_string());
        match rest[end..].strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    // A trailing lowercase segment can be a function or a constant's module; keeping it only
    // lengthens the path, which can only move it to a more specific (never a higher) entry.
    segments.join("::")
}

#[test]
fn no_module_refers_to_a_module_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut unranked = Vec::new();
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module.is_empty() || module[0] == "bin" {
            // The crate root and the binaries compose everything; they sit above every layer.
            continue;
        }
        let path = module.join("::");
        let Some((own_rank, own_layer)) = rank(&path) else {
            unranked.push(path);
            continue;
        };
        let text = fs::read_to_string(file).expect("readable source file");
        for target in crate_paths(&text) {
            let Some((target_rank, target_layer)) = rank(&target) else {
                unranked.push(format!("{target} (named in {})", file.display()));
                continue;
            };
            if target_rank > own_rank && !ALLOWED.contains(&(own_layer, target_layer)) {
                violations.push(format!("{} ({own_layer}) names crate::{target} ({target_layer}, above it)", file.strip_prefix(&src).unwrap().display()));
            }
        }
    }
    violations.sort();
    violations.dedup();
    unranked.sort();
    unranked.dedup();
    assert!(unranked.is_empty(), "modules with no place in LAYERS (add them where they belong):\n  {}", unranked.join("\n  "));
    assert!(violations.is_empty(), "{} references look up the layers:\n  {}", violations.len(), violations.join("\n  "));
}

#[test]
fn the_checker_sees_grouped_and_nested_paths() {
    assert_eq!(crate_paths("use crate::{journal::event::Event, pipeline::{Input, forwarder}};"), ["journal::event", "pipeline"]);
    assert_eq!(crate_paths("x: crate::metrics::Counter, $crate::no"), ["metrics"]);
    assert_eq!(crate_paths("use crate::ilp;"), ["ilp"]);
    assert_eq!(rank("journal::event").map(|(_, layer)| layer), Some("journal::event"));
    assert_eq!(rank("journal::store").map(|(_, layer)| layer), Some("journal"));
    assert!(rank("journal::event").unwrap().0 < rank("metrics").unwrap().0);
}
