//! Builds the example vendor plugin from a clean directory, as a vendor
//! would: a copy of `plugins/vendor-lnd` whose only dependency is a copy of
//! `lnd-api`, optionally changed to model a plugin built against another
//! interface, or both exactly as an earlier commit of this repository had
//! them (a plugin built against a released lnd-api and never rebuilt).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{run, target_dir, workspace_root};

/// How the copy of lnd-api the plugin builds against differs from ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interface {
    /// The same lnd-api.
    Same,
    /// lnd-api with a changed type layout but the same version.
    ChangedLayout,
    /// lnd-api bumped to the next major version.
    NextMajor,
    /// lnd-api and vendor-lnd exactly as they were at this commit of the
    /// repository (taken with `git archive`), such as [`LND_API_1_0_0`]: a
    /// plugin built against an older lnd-api. Needs `git` and the commit.
    Released(&'static str),
}

/// The last commit of lnd-api 1.0.0 (the base interface, frozen), with the
/// vendor plugin (0.3.1) as it was released against it.
pub const LND_API_1_0_0: &str = "44b21e898510c8268455605d5116033326ed1567";

/// The last commit of lnd-api 1.1.0 (span I/O, no parameter extension),
/// with the vendor plugin (0.4.0) as it was released against it.
pub const LND_API_1_1_0: &str = "6a81b492ab5203705155e0f1cb7df53c4e4e1051";

/// The lnd-api version after ours that breaks compatibility (`2.0.0`).
pub fn next_major() -> String {
    let major: u32 = lnd_api::ABI_VERSION
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .expect("ABI_VERSION starts with a number");
    format!("{}.0.0", major + 1)
}

/// The directory of the example vendor plugin built against our lnd-api
/// (`vendor-lnd`, net type `vnd`), built once per test process (parallel
/// builds into one scratch directory would race).
pub fn vendor_plugin_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let plugin = build_vendor_plugin("same", Interface::Same, "vendor-lnd", "vnd");
        plugin.so.parent().expect("plugin dir").to_path_buf()
    })
    .clone()
}

/// A plugin built out of tree.
pub struct BuiltPlugin {
    /// The `.so`.
    pub so: PathBuf,
    /// Its scratch directory (kept for inspection; under the target dir).
    pub dir: PathBuf,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("dir entry");
        let p = e.path();
        let name = e.file_name();
        if name == "target" {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(&name));
        } else {
            std::fs::copy(&p, to.join(&name)).expect("copy");
        }
    }
}

fn replace_in(file: &Path, from: &str, to: &str) {
    let s = std::fs::read_to_string(file).expect("read");
    assert!(
        s.contains(from),
        "{} does not contain {from:?}",
        file.display()
    );
    std::fs::write(file, s.replacen(from, to, 1)).expect("write");
}

/// Extracts `lnd-api/` and `plugins/vendor-lnd/` as they were at `commit`
/// into `to` (`git archive`, so nothing of the working tree leaks in).
/// Panics with the reason when git or the commit is missing: a test that
/// needs the released plugin must not pass without it.
fn extract_at_commit(root: &Path, commit: &str, to: &Path) {
    let why = format!(
        "building lnd-api and the vendor plugin as released at commit {commit} needs git and \
         that commit in the repository at {}",
        root.display()
    );
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{why}: cannot run git: {e}"))
    };
    let have = git(&["cat-file", "-e", &format!("{commit}^{{commit}}")]);
    if !have.status.success() {
        panic!(
            "{why}, but it has no such commit (a shallow clone or a source tarball? fetch the \
             full history): {}",
            String::from_utf8_lossy(&have.stderr).trim()
        );
    }
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).expect("mkdir");
    let tar = to.join("sources.tar");
    let out = git(&[
        "archive",
        "--format=tar",
        "-o",
        tar.to_str().expect("a UTF-8 target directory"),
        commit,
        "lnd-api",
        "plugins/vendor-lnd",
    ]);
    if !out.status.success() {
        panic!(
            "{why}: git archive failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    run(Command::new("tar")
        .arg("-x")
        .arg("-f")
        .arg(&tar)
        .arg("-C")
        .arg(to));
}

/// Makes the crate in `dir` a project of its own (its own workspace root),
/// with literal settings where ours come from the workspace.
fn standalone(dir: &Path) {
    let toml = dir.join("Cargo.toml");
    let s = std::fs::read_to_string(&toml).expect("read Cargo.toml");
    let mut s = s
        .replace("edition.workspace = true", "edition = \"2021\"")
        .replace(
            "license.workspace = true",
            "license = \"MIT OR Apache-2.0\"",
        )
        .replace("rust-version.workspace = true", "")
        .replace("abi_stable.workspace = true", "abi_stable = \"0.11.3\"")
        .replace("proptest.workspace = true", "proptest = \"1\"");
    s.push_str("\n[workspace]\n");
    std::fs::write(&toml, s).expect("write Cargo.toml");
}

/// `cargo build` of the standalone project in `dir`, with our `Cargo.lock`
/// (the same dependency versions as the host, abi_stable in particular),
/// into the shared out-of-tree target directory.
fn cargo_build(dir: &Path) {
    let root = workspace_root();
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
    run(crate::bins::cargo()
        .arg("build")
        .arg("--quiet")
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", shared_target())
        .env_remove("RUSTFLAGS"));
}

/// Builds `tests/fixtures/old_host.rs`, a minimal host, against lnd-api as
/// of `commit` (an older release, such as [`LND_API_1_0_0`]); returns the
/// binary. It loads a plugin with that release's loader and moves PUTs
/// between two of its NIs through that release's interface.
pub fn build_old_host(commit: &str) -> PathBuf {
    let root = workspace_root();
    let dir = target_dir().join("plugin-builds").join("old-host");
    let _ = std::fs::remove_dir_all(dir.join("src"));
    let from = dir.join("src/archive");
    extract_at_commit(&root, commit, &from);
    let api = dir.join("src/lnd-api");
    std::fs::rename(from.join("lnd-api"), &api).expect("move lnd-api");
    standalone(&api);
    let host = dir.join("src/old-host");
    std::fs::create_dir_all(host.join("src")).expect("mkdir");
    std::fs::write(
        host.join("Cargo.toml"),
        "[package]\nname = \"old-host\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
         publish = false\n\n[dependencies]\nlnd-api = { path = \"../lnd-api\" }\n\n[workspace]\n",
    )
    .expect("write Cargo.toml");
    std::fs::copy(
        root.join("tests/fixtures/old_host.rs"),
        host.join("src/main.rs"),
    )
    .expect("copy old_host.rs");
    cargo_build(&host);
    let bin = shared_target().join("debug").join("old-host");
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

/// One target directory for every out-of-tree build, so abi_stable is
/// compiled once.
fn shared_target() -> PathBuf {
    target_dir().join("plugin-builds").join("target")
}

/// Builds `plugins/vendor-lnd` in `<target>/plugin-builds/<tag>/` against a
/// copy of lnd-api changed as `iface` says (or both as of a commit, with
/// [`Interface::Released`]), with the package renamed to `name` and
/// providing network type `net_type`.
pub fn build_vendor_plugin(tag: &str, iface: Interface, name: &str, net_type: &str) -> BuiltPlugin {
    let root = workspace_root();
    let dir = target_dir().join("plugin-builds").join(tag);
    let _ = std::fs::remove_dir_all(dir.join("src"));
    let api = dir.join("src/lnd-api");
    let plugin = dir.join("src/vendor-lnd");
    match iface {
        Interface::Released(commit) => {
            let from = dir.join("src/archive");
            extract_at_commit(&root, commit, &from);
            std::fs::rename(from.join("lnd-api"), &api).expect("move lnd-api");
            std::fs::rename(from.join("plugins/vendor-lnd"), &plugin).expect("move vendor-lnd");
        }
        Interface::Same | Interface::ChangedLayout | Interface::NextMajor => {
            copy_dir(&root.join("lnd-api"), &api);
            copy_dir(&root.join("plugins/vendor-lnd"), &plugin);
        }
    }
    standalone(&api);
    standalone(&plugin);
    replace_in(
        &plugin.join("Cargo.toml"),
        "path = \"../../lnd-api\"",
        "path = \"../lnd-api\"",
    );
    replace_in(
        &plugin.join("Cargo.toml"),
        "name = \"vendor-lnd\"",
        &format!("name = \"{name}\""),
    );
    replace_in(
        &plugin.join("src/lib.rs"),
        "name: \"vendor-lnd\"",
        &format!("name: \"{name}\""),
    );
    replace_in(
        &plugin.join("src/lib.rs"),
        "(\"vnd\", VND_LND_TYPE)",
        &format!("(\"{net_type}\", VND_LND_TYPE)"),
    );
    replace_in(
        &plugin.join("src/lib.rs"),
        "if net_type != \"vnd\"",
        &format!("if net_type != \"{net_type}\""),
    );
    match iface {
        Interface::Same | Interface::Released(_) => {}
        Interface::ChangedLayout => replace_in(
            &api.join("src/types.rs"),
            "    pub timeout_secs: u32,\n}",
            "    pub timeout_secs: u64,\n}",
        ),
        Interface::NextMajor => {
            let ours = format!("version = \"{}\"", lnd_api::ABI_VERSION);
            let next = format!("version = \"{}\"", next_major());
            replace_in(&api.join("Cargo.toml"), &ours, &next);
            replace_in(&plugin.join("Cargo.toml"), &ours, &next);
        }
    }
    // The vendor plugin builds liblnd_vnd.so (named for its network type,
    // as lnetd looks plugins up); a renamed copy lib<name>.so.
    // (Releases before lnd-api 1.2 build lib<package>.so.)
    let toml = plugin.join("Cargo.toml");
    let text = std::fs::read_to_string(&toml).expect("read Cargo.toml");
    let lib = if name == "vendor-lnd" && text.contains("name = \"lnd_vnd\"") {
        "lnd_vnd".to_string()
    } else {
        name.replace('-', "_")
    };
    if text.contains("name = \"lnd_vnd\"") {
        replace_in(&toml, "name = \"lnd_vnd\"", &format!("name = \"{lib}\""));
    }
    cargo_build(&plugin);
    let so = shared_target().join("debug").join(format!("lib{lib}.so"));
    assert!(so.exists(), "{} was not built", so.display());
    BuiltPlugin { so, dir }
}

/// The name the vendor plugin as released against lnd-api 1.0.0 is given
/// ([`released_1_0_so`]), so that it cannot be mistaken for the current one
/// (its sources are otherwise untouched), and its network type.
pub const RELEASED_1_0_NAME: &str = "vendor-lnd-1-0";
/// See [`RELEASED_1_0_NAME`].
pub const RELEASED_1_0_NET: &str = "vold";

/// The vendor plugin as released against lnd-api 1.0.0 (no extension of any
/// kind), renamed ([`RELEASED_1_0_NAME`], [`RELEASED_1_0_NET`]); built once
/// per test process (parallel builds into one scratch directory would
/// race).
pub fn released_1_0_so() -> &'static Path {
    static SO: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SO.get_or_init(|| {
        build_vendor_plugin(
            "released-1.0.0",
            Interface::Released(LND_API_1_0_0),
            RELEASED_1_0_NAME,
            RELEASED_1_0_NET,
        )
        .so
    })
}

/// Builds `tests/fixtures/slow_lnd.rs`, a test plugin (network type `slo`)
/// whose load and NI start-up wait on files of a directory, and whose
/// start-up calls the host, with a filter whose wrap of an NI does the same
/// (see the fixture); returns `liblnd_slo.so`, in a
/// directory of its own (a plugin path holding it alone). Built once per
/// test process, against this workspace's lnd-api, in the out-of-tree
/// target directory (never next to lnetd, whose own directory is in its
/// plugin path).
pub fn slow_plugin() -> PathBuf {
    static SO: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SO.get_or_init(|| {
        let root = workspace_root();
        let dir = target_dir().join("plugin-builds").join("slow-lnd");
        let src = dir.join("src/slow-lnd");
        std::fs::create_dir_all(src.join("src")).expect("mkdir");
        std::fs::write(
            src.join("Cargo.toml"),
            format!(
                "[package]\nname = \"slow-lnd\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\
                 publish = false\n\n[lib]\nname = \"lnd_slo\"\ncrate-type = [\"cdylib\"]\n\n\
                 [dependencies]\nlnd-api = {{ path = \"{}\" }}\n\n[workspace]\n",
                root.join("lnd-api").display()
            ),
        )
        .expect("write Cargo.toml");
        std::fs::copy(
            root.join("tests/fixtures/slow_lnd.rs"),
            src.join("src/lib.rs"),
        )
        .expect("copy slow_lnd.rs");
        std::fs::copy(root.join("Cargo.lock"), src.join("Cargo.lock")).expect("copy Cargo.lock");
        run(crate::bins::cargo()
            .arg("build")
            .arg("--quiet")
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", shared_target())
            .env_remove("RUSTFLAGS"));
        let built = shared_target().join("debug").join("liblnd_slo.so");
        assert!(built.exists(), "{} was not built", built.display());
        let out = dir.join("plugins");
        std::fs::create_dir_all(&out).expect("mkdir");
        let so = out.join("liblnd_slo.so");
        std::fs::copy(&built, &so).expect("copy the plugin");
        so
    })
    .clone()
}
