//! The crate's unsafe policy, checked on its sources: `unsafe` only in the
//! `sys` module (`src/sys.rs` and `src/sys/`), the crate-level
//! `deny(unsafe_code)` lifted only there, and every `unsafe` block or impl
//! preceded by a `// SAFETY:` comment.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a line: without a `//` comment (good enough for this
/// crate: no `//` inside its string literals near `unsafe`).
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

#[test]
fn unsafe_only_in_sys_and_each_with_a_safety_comment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 5, "sources found: {files:?}");
    let mut allows = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(root).expect("under the crate").to_path_buf();
        let in_sys = rel.starts_with("src/sys") || rel == Path::new("src/sys.rs");
        let text = std::fs::read_to_string(f).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let c = code(l);
            if c.contains("allow(unsafe_code)") {
                allows.push(format!("{}:{}", rel.display(), i + 1));
            }
            let is_unsafe = c.contains("unsafe {")
                || c.contains("unsafe impl")
                || c.contains("unsafe fn")
                || c.trim_end().ends_with("unsafe");
            if !is_unsafe || c.contains("unsafe extern \"C\" fn") {
                continue;
            }
            assert!(
                in_sys,
                "{}:{}: unsafe outside the sys module: {l}",
                rel.display(),
                i + 1
            );
            // The statement's first line, then a SAFETY comment right
            // above it (after other comment lines of the same block).
            let mut j = i;
            while j > 0
                && !code(lines[j - 1]).trim().is_empty()
                && !lines[j - 1].trim().ends_with(';')
                && !lines[j - 1].trim().ends_with('{')
                && !lines[j - 1].trim().ends_with('}')
                && !lines[j - 1].trim_start().starts_with("//")
            {
                j -= 1;
            }
            let mut k = j;
            let mut found = false;
            while k > 0 && lines[k - 1].trim_start().starts_with("//") {
                if lines[k - 1].contains("SAFETY:") {
                    found = true;
                    break;
                }
                k -= 1;
            }
            assert!(
                found,
                "{}:{}: unsafe without a `// SAFETY:` comment: {l}",
                rel.display(),
                i + 1
            );
        }
    }
    assert!(
        allows.len() == 1 && allows[0].starts_with("src/lib.rs:"),
        "unsafe_code allowed elsewhere than on `mod sys`: {allows:?}"
    );
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    assert!(lib.contains("#![deny(unsafe_code)]"));
    assert!(lib.contains("#[allow(unsafe_code)]\npub mod sys;"));
}
