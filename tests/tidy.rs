//! Tidy: the architecture rules of ARCHITECTURE.md, checked over the source tree (in the style
//! of rust-analyzer's `tidy` test). Each finding says `file:line: rule: what was found`.
//!
//! - the pure modules (`celery`, `signals`, `policy`) use no tokio, redis, prometheus or
//!   tracing, no `Instant`/`SystemTime`, no `std::fs` and no `std::net`;
//! - `redis::` appears only under `src/broker/`;
//! - generated protobuf types appear only under `src/grpc/`;
//! - the prometheus crate is named only in the telemetry module (`src/telemetry*`), and no
//!   metric is a global: no `register_*!` macro (they register in the crate's default
//!   registry), no `lazy_static!`, no `static` of a metric type anywhere in `src/`;
//! - every `src/**/*.rs` file starts with a `//!` doc comment;
//! - nothing cites a document outside the repository (the outside notes folder, an absolute
//!   `/work` path, or a `*.md` file that no file in the repository is named after).
//!
//! Comments and string literals are blanked before the code rules run, so prose may name
//! what code may not use. Known violations owned by other work are listed in [`ALLOWED`];
//! an entry that no longer matches anything fails the test too, so the list only shrinks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Pure modules: the Celery model, the signals and the policy.
const PURE: &[&str] = &["src/celery", "src/signals", "src/policy"];
/// Crates the pure modules must not name.
const IMPURE_CRATES: &[&str] = &["tokio", "redis", "prometheus", "tracing"];
/// Clock types the pure modules must not name (time is passed in).
const CLOCKS: &[&str] = &["Instant", "SystemTime"];
/// Names tonic/prost generate from `proto/externalscaler.proto`.
const GENERATED: &[&str] = &[
    "ScaledObjectRef",
    "IsActiveResponse",
    "GetMetricSpecResponse",
    "MetricSpec",
    "GetMetricsRequest",
    "GetMetricsResponse",
    "MetricValue",
    "ExternalScalerServer",
    "ExternalScalerClient",
    "external_scaler_server",
    "external_scaler_client",
];
/// The one module that owns every metric.
const TELEMETRY: &str = "src/telemetry";
/// Type names that make a `static` a global metric (or a holder of metrics).
const METRIC_TYPES: &[&str] = &[
    "Counter",
    "Gauge",
    "Histogram",
    "Registry",
    "Collector",
    "Metrics",
    "SeriesBudget",
    "ObjectSeries",
    "SampleAge",
];

/// Directories never scanned.
const SKIP_DIRS: &[&str] = &[
    "target",
    ".git",
    // Tools the deploy checks install (git-ignored): a venv cites its own absolute path.
    ".tools",
    ".venv",
    ".work",
    "node_modules",
    "__pycache__",
];

/// Known violations, as `(file, rule)`: each must still occur (or the entry is stale).
/// `src/server.rs` wires the generated gRPC server type into the listener; it moves under
/// `src/grpc/` with the telemetry/structure work of issue 9.
const ALLOWED: &[(&str, &str)] = &[("src/server.rs", "protobuf")];

#[test]
fn source_tree_keeps_the_architecture_rules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut findings = Vec::new();
    for path in files(root, &root.join("src")) {
        if path.extension().is_some_and(|e| e == "rs") {
            check_rust(root, &path, &mut findings);
        }
    }
    check_citations(root, &mut findings);
    let mut used = BTreeSet::new();
    findings.retain(
        |f| match ALLOWED.iter().find(|a| f.file == a.0 && f.rule == a.1) {
            Some(a) => {
                used.insert(*a);
                false
            }
            None => true,
        },
    );
    let stale: Vec<_> = ALLOWED.iter().filter(|a| !used.contains(*a)).collect();
    let report: Vec<String> = findings.iter().map(Finding::to_string).collect();
    assert!(
        report.is_empty() && stale.is_empty(),
        "tidy found {} problem(s):\n{}\nstale ALLOWED entries (remove them): {stale:?}",
        report.len(),
        report.join("\n")
    );
}

struct Finding {
    file: String,
    line: usize,
    rule: &'static str,
    what: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.rule, self.what
        )
    }
}

fn check_rust(root: &Path, path: &Path, out: &mut Vec<Finding>) {
    let rel = relative(root, path);
    let Ok(text) = std::fs::read_to_string(path) else {
        out.push(finding(&rel, 1, "readable", "not UTF-8".into()));
        return;
    };
    if !text.starts_with("//!") {
        out.push(finding(
            &rel,
            1,
            "doc-comment",
            "file does not start with `//!`".into(),
        ));
    }
    let code = blank_comments_and_strings(&text);
    let in_module = |m: &str| rel.starts_with(&format!("{m}/")) || rel == format!("{m}.rs");
    if PURE.iter().any(|m| in_module(m)) {
        for krate in IMPURE_CRATES {
            for line in path_uses(&code, krate) {
                out.push(finding(&rel, line, "purity", format!("uses `{krate}::`")));
            }
        }
        for clock in CLOCKS {
            for line in words(&code, clock) {
                out.push(finding(&rel, line, "purity", format!("names `{clock}`")));
            }
        }
        for module in ["fs", "net"] {
            for line in std_uses(&code, module) {
                out.push(finding(
                    &rel,
                    line,
                    "purity",
                    format!("uses `std::{module}`"),
                ));
            }
        }
    }
    check_metrics(&rel, &code, in_module(TELEMETRY), out);
    if !in_module("src/broker") {
        for line in path_uses(&code, "redis") {
            out.push(finding(
                &rel,
                line,
                "redis-only-in-broker",
                "uses `redis::`".into(),
            ));
        }
    }
    if !in_module("src/grpc") {
        for line in proto_paths(&code) {
            out.push(finding(
                &rel,
                line,
                "protobuf",
                "uses a `proto::` path".into(),
            ));
        }
        for name in GENERATED {
            for line in words(&code, name) {
                out.push(finding(&rel, line, "protobuf", format!("names `{name}`")));
            }
        }
    }
}

/// Metrics live in the telemetry module, and none is a global static.
fn check_metrics(rel: &str, code: &str, in_telemetry: bool, out: &mut Vec<Finding>) {
    if !in_telemetry {
        for line in path_uses(code, "prometheus") {
            out.push(finding(
                rel,
                line,
                "metrics-in-telemetry",
                "uses `prometheus::` outside the telemetry module".into(),
            ));
        }
    }
    for (line, what) in global_metrics(code) {
        out.push(finding(rel, line, "no-global-metrics", what));
    }
}

/// Lines that make a global metric: a `register_*!` or `lazy_static!` macro call, or a
/// `static` whose type names a metric type ([`METRIC_TYPES`]).
fn global_metrics(code: &str) -> Vec<(usize, String)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if !is_ident(bytes[at]) || (at > 0 && is_ident(bytes[at - 1])) {
            at += 1;
            continue;
        }
        let end = at + bytes[at..].iter().take_while(|b| is_ident(**b)).count();
        let word = &code[at..end];
        let bang = code[end..].trim_start().starts_with('!');
        if bang && (word.starts_with("register_") || word == "lazy_static") {
            found.push((line_of(code, at), format!("calls `{word}!`")));
        } else if word == "static" && (at == 0 || bytes[at - 1] != b'\'') {
            let decl = code[end..].split(['=', ';']).next().unwrap_or_default();
            if let Some(t) = METRIC_TYPES.iter().find(|t| decl.contains(*t)) {
                found.push((
                    line_of(code, at),
                    format!("a `static` of a metric type ({t})"),
                ));
            }
        }
        at = end;
    }
    found
}

#[test]
fn installed_tools_are_not_scanned() {
    let root = std::env::temp_dir().join(format!("tidy-skip-{}", std::process::id()));
    let venv = root.join(".tools/deploy-venv/bin");
    std::fs::create_dir_all(&venv).unwrap();
    std::fs::write(venv.join("pip"), "#!/abs/path/python3\n").unwrap();
    std::fs::write(root.join("kept.rs"), "//! kept\n").unwrap();
    let found = files(&root, &root);
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(found, vec![root.join("kept.rs")]);
}

#[test]
fn global_metrics_are_found() {
    let code = "static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {\n    register_int_counter_vec!(\"x\", \"y\", &[\"a\"]).unwrap()\n});\nlazy_static! { static ref G: Gauge = todo!(); }\nstatic LABEL_KEY: LazyLock<RandomState> = LazyLock::new(RandomState::new);\nfn f(_: &'static str) { let _ = not_register_x(); }";
    let lines: Vec<usize> = global_metrics(code).iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, vec![1, 2, 4, 4]);
    let mut out = Vec::new();
    check_metrics("src/admin.rs", "use prometheus::Encoder;", false, &mut out);
    check_metrics(
        "src/telemetry/grpc.rs",
        "use prometheus::Encoder;",
        true,
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].file, "src/admin.rs");
}

/// No file cites the outside notes folder, an absolute `/work` path, or a missing `*.md`.
fn check_citations(root: &Path, out: &mut Vec<Finding>) {
    let all = files(root, root);
    let names: BTreeSet<String> = all
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .collect();
    let outside = ["shared", "/"].concat();
    let absolute = ["/wo", "rk/"].concat();
    for path in all {
        let rel = relative(root, &path);
        if rel == "tests/tidy.rs" || rel == "Cargo.lock" {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // binary files cite nothing
        };
        for (i, line) in text.lines().enumerate() {
            let mut cite = |what: String| out.push(finding(&rel, i + 1, "self-contained", what));
            if line.contains(&outside) || line.contains(&absolute) {
                cite(format!(
                    "cites a folder outside the repository: {}",
                    clip(line)
                ));
                continue;
            }
            for doc in md_references(line) {
                let base = doc.rsplit('/').next().unwrap_or(&doc);
                if !names.contains(base) {
                    cite(format!("cites `{doc}`, which is not in the repository"));
                }
            }
        }
    }
}

/// `*.md` names in a line, except inside URLs.
fn md_references(line: &str) -> Vec<String> {
    line.split(|c: char| !(c.is_alphanumeric() || "_./-:".contains(c)))
        .filter(|t| !t.contains("://"))
        .map(|t| t.trim_end_matches(['.', ':']).trim_start_matches(':'))
        .filter(|t| t.len() > 3 && t.ends_with(".md"))
        .map(str::to_string)
        .collect()
}

fn finding(file: &str, line: usize, rule: &'static str, what: String) -> Finding {
    Finding {
        file: file.to_string(),
        line,
        rule,
        what,
    }
}

fn clip(line: &str) -> String {
    line.trim().chars().take(100).collect()
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.to_string_lossy().replace('\\', "/")
}

/// Every file under `dir`, sorted, skipping [`SKIP_DIRS`].
fn files(root: &Path, dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if SKIP_DIRS.contains(&name.as_str()) && !path.is_dir() {
                continue; // a worktree's `.git` is a file
            }
            if path.is_dir() {
                if !SKIP_DIRS.contains(&name.as_str()) && path != root.join("tests/e2e/.venv") {
                    stack.push(path);
                }
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Line numbers (1-based) where `word` occurs as a whole identifier.
fn words(code: &str, word: &str) -> Vec<usize> {
    let bytes = code.as_bytes();
    let mut lines = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(word).map(|i| i + from) {
        let end = at + word.len();
        let left = at == 0 || !is_ident(bytes[at - 1]);
        let right = end == bytes.len() || !is_ident(bytes[end]);
        if left && right {
            lines.push(line_of(code, at));
        }
        from = end;
    }
    lines
}

/// Lines where `krate` starts a path (`krate::…`, not `other::krate::…`) or is `use`d alone.
fn path_uses(code: &str, krate: &str) -> Vec<usize> {
    words_where(code, krate, |before, after| {
        let starts_path = !before.ends_with("::");
        starts_path
            && (after.starts_with("::") || before.ends_with("use") && after.starts_with(';'))
    })
}

/// Lines where `proto::` is used, except the prometheus crate's own `prometheus::proto`.
fn proto_paths(code: &str) -> Vec<usize> {
    words_where(code, "proto", |before, after| {
        after.starts_with("::") && !before.ends_with("prometheus::")
    })
}

/// Lines where `std::<module>` is used, directly or inside a `use std::{…}` group.
fn std_uses(code: &str, module: &str) -> Vec<usize> {
    let mut lines = words_where(code, module, |before, after| {
        before.ends_with("std::") && !after.starts_with('_')
    });
    let mut from = 0;
    while let Some(at) = code[from..].find("std::{").map(|i| i + from) {
        let end = code[at..].find(';').map_or(code.len(), |i| i + at);
        let group = &code[at..end];
        if !words(group, module).is_empty() {
            lines.push(line_of(code, at));
        }
        from = end;
    }
    lines
}

/// Lines where `word` occurs as an identifier and `test(before, after)` holds; `before` is
/// the code just before it with whitespace removed, `after` the code after it.
fn words_where(code: &str, word: &str, test: impl Fn(&str, &str) -> bool) -> Vec<usize> {
    let bytes = code.as_bytes();
    let mut lines = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(word).map(|i| i + from) {
        let end = at + word.len();
        let left = at == 0 || !is_ident(bytes[at - 1]);
        let right = end == bytes.len() || !is_ident(bytes[end]);
        if left && right {
            let before: String = code[..at]
                .chars()
                .rev()
                .take(40)
                .filter(|c| !c.is_whitespace())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let after = code[end..].trim_start();
            if test(&before, after) {
                lines.push(line_of(code, at));
            }
        }
        from = end;
    }
    lines
}

fn line_of(code: &str, offset: usize) -> usize {
    code[..offset].bytes().filter(|b| *b == b'\n').count() + 1
}

/// The source with comments and the contents of string and char literals replaced by
/// spaces (newlines kept, so line numbers stay right).
fn blank_comments_and_strings(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if c[i] == 'r' && (next == Some('"') || next == Some('#')) && raw_start(&c, i) {
            let hashes = c[i + 1..].iter().take_while(|ch| **ch == '#').count();
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            out.push('r');
            i += 1 + hashes + 1;
            out.push_str(&" ".repeat(hashes + 1));
            while i < c.len() && !c[i..].starts_with(&close) {
                blank(&mut out, c[i]);
                i += 1;
            }
            out.push_str(&" ".repeat(close.len()));
            i += close.len();
        } else if c[i] == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c[i] == '\'' && char_literal_len(&c, i) > 0 {
            let n = char_literal_len(&c, i);
            out.push_str(&" ".repeat(n));
            i += n;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Whether `r` at `i` opens a raw string (`r"…"`, `r#"…"#`) rather than ending an identifier.
fn raw_start(c: &[char], i: usize) -> bool {
    let ident_before = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
    let prefix_b =
        i > 0 && c[i - 1] == 'b' && !(i > 1 && (c[i - 2].is_alphanumeric() || c[i - 2] == '_'));
    let hashes = c[i + 1..].iter().take_while(|ch| **ch == '#').count();
    (!ident_before || prefix_b) && c.get(i + 1 + hashes) == Some(&'"')
}

/// Length in chars of a char literal at `i` (`'a'`, `'\n'`, `'\u{1F600}'`), 0 for a lifetime.
fn char_literal_len(c: &[char], i: usize) -> usize {
    match c.get(i + 1) {
        Some('\\') => c[i + 2..]
            .iter()
            .position(|ch| *ch == '\'')
            .map_or(0, |p| p + 3),
        Some(_) if c.get(i + 2) == Some(&'\'') => 3,
        _ => 0,
    }
}

#[test]
fn the_lexer_blanks_prose_but_not_code() {
    let src = "use tokio::x; // tokio::y\nlet s = \"redis::z\"; let r = r#\"proto::\"#;\n/* SystemTime */ let c = '\"'; fn f<'a>(_: &'a str) {}\nuse std::{fs, io};";
    let code = blank_comments_and_strings(src);
    assert_eq!(path_uses(&code, "tokio"), vec![1]);
    assert!(path_uses(&code, "redis").is_empty());
    assert!(proto_paths(&code).is_empty());
    assert!(words(&code, "SystemTime").is_empty());
    assert_eq!(std_uses(&code, "fs"), vec![4]);
    assert!(std_uses(&code, "net").is_empty());
    assert_eq!(code.lines().count(), src.lines().count());
    assert!(proto_paths("prometheus::proto::Gauge").is_empty());
    assert_eq!(proto_paths("crate::grpc::proto::X"), vec![1]);
    assert_eq!(
        md_references("see docs/keda.md. and https://x.io/a/B.md"),
        vec!["docs/keda.md"]
    );
}
