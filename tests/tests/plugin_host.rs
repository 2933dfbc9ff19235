//! The plugin host: loading the vendor plugin built out of tree, and every
//! refusal (issue #2 points 3 and 7). A refused load changes nothing.

use std::path::PathBuf;

use lnet_tests::plugin_build::{build_vendor_plugin, Interface};
use lnetd::host::{HostError, PluginHost, PluginState};

fn host() -> PluginHost {
    PluginHost::new(Vec::new())
}

fn names(h: &PluginHost) -> Vec<String> {
    h.list()
        .into_iter()
        .map(|p| format!("{} {}", p.name, p.state.as_str()))
        .collect()
}

#[test]
fn builtin_lo_is_registered() {
    let h = host();
    let lo = h
        .list()
        .into_iter()
        .find(|p| p.net_types == ["lo"])
        .expect("a built-in provides lo");
    assert!(lo.builtin);
    assert_eq!(h.lnd_type_of("lo"), Some(9));
}

#[test]
fn vendor_plugin_built_out_of_tree_loads_and_refusals_change_nothing() {
    let good = build_vendor_plugin("same", Interface::Same, "vendor-lnd", "vnd");
    let mut h = host();
    let before = names(&h);
    let info = h.load(&good.so).expect("the vendor plugin loads");
    assert_eq!(info.name, "vendor-lnd");
    assert_eq!(info.version, "0.4.0");
    assert_eq!(info.abi_version, lnd_api::ABI_VERSION);
    assert_eq!(info.net_types, vec!["vnd".to_string()]);
    assert_eq!(info.state, PluginState::Active);
    assert_eq!(h.lnd_type_of("vnd"), Some(0xF0));
    let after_load = names(&h);
    assert_eq!(after_load.len(), before.len() + 1);

    // The same file twice.
    let e = h.load(&good.so).expect_err("same file twice");
    assert!(matches!(e, HostError::AlreadyLoaded { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("already loaded as plugin vendor-lnd"),
        "{e}"
    );

    // Another plugin providing a network type that is taken.
    let rival = build_vendor_plugin("rival", Interface::Same, "rival-lnd", "vnd");
    let e = h.load(&rival.so).expect_err("type taken");
    assert!(matches!(e, HostError::NetTypeTaken { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&rival.so.display().to_string()), "{msg}");
    assert!(
        msg.contains("network type vnd is already provided by plugin vendor-lnd"),
        "{msg}"
    );

    // Built against a changed interface (same version, other layout).
    let changed = build_vendor_plugin("changed", Interface::ChangedLayout, "changed-lnd", "chg");
    let e = h.load(&changed.so).expect_err("changed layout");
    let msg = e.to_string();
    assert!(
        matches!(&e, HostError::Load(lnd_api::LoadError::AbiMismatch { .. })),
        "{msg}"
    );
    assert!(msg.contains(&changed.so.display().to_string()), "{msg}");
    let ours = lnd_api::ABI_VERSION;
    assert!(
        msg.contains(&format!(
            "built against lnd-api {ours}, but its interface types differ"
        )),
        "{msg}"
    );
    assert!(
        msg.contains("Error: mismatched type at NiInfo.timeout_secs (reached through the root module's new_lnd): this LNet has u32, the plugin has u64"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("rebuild the plugin against lnd-api {ours}")),
        "{msg}"
    );
    assert!(
        msg.lines()
            .skip(1)
            .all(|l| l.trim_start().starts_with("Error:")),
        "only Error: lines follow: {msg}"
    );
    assert!(msg.lines().count() <= 9, "the report is filtered: {msg}");

    // Built against the next major version of lnd-api.
    let major = build_vendor_plugin("major", Interface::NextMajor, "major-lnd", "maj");
    let e = h.load(&major.so).expect_err("next major");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!(
            "built against lnd-api {}, but this LNet uses lnd-api {ours}",
            lnet_tests::plugin_build::next_major()
        )),
        "{msg}"
    );

    assert_eq!(names(&h), after_load, "refused loads changed nothing");

    // Unload deactivates; the same file loads again afterwards.
    let un = h.unload("vendor-lnd").expect("unload");
    assert_eq!(un.state, PluginState::Inactive);
    let e = h
        .lnd_for("vnd")
        .err()
        .expect("inactive plugin cannot start NIs");
    assert!(e.to_string().contains("was unloaded"), "{e}");
    h.load(&good.so).expect("reload after unload");
    h.lnd_for("vnd").expect("active again");
}

#[test]
fn missing_file_is_refused() {
    let mut h = host();
    let e = h
        .load(&PathBuf::from("/nonexistent/libnothing.so"))
        .expect_err("missing");
    let msg = e.to_string();
    assert!(
        msg.starts_with("cannot load plugin /nonexistent/libnothing.so: no such file"),
        "{msg}"
    );
    assert_eq!(e.errno(), lnd_api::errno::ENOENT);
}

#[test]
fn a_file_that_is_not_a_shared_object_is_refused() {
    let mut h = host();
    let dir = lnet_tests::target_dir().join("plugin-builds");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let f = dir.join("not-a-plugin.so");
    std::fs::write(&f, "this is text, not ELF\n").expect("write");
    let e = h.load(&f).expect_err("text file");
    let msg = e.to_string();
    assert!(msg.contains("not a shared object"), "{msg}");
    assert!(msg.contains(&f.display().to_string()), "{msg}");
}

#[test]
fn a_shared_object_that_is_not_an_lnd_plugin_is_refused() {
    let mut h = host();
    // Any ordinary shared library: the C math library is on every system.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("libm.so.6 exists");
    let e = h.load(&libm).expect_err("libm is no plugin");
    let msg = e.to_string();
    assert!(msg.contains("is not an LND plugin"), "{msg}");
    assert!(msg.contains("export_lnd_plugin!"), "{msg}");
}

#[test]
fn unknown_network_type_names_the_plugin_path() {
    let mut h = PluginHost::new(vec![PathBuf::from("/nonexistent-plugin-dir")]);
    let e = h.lnd_for("zzz").err().expect("nothing provides zzz");
    let msg = e.to_string();
    assert!(
        msg.contains("no loaded plugin provides network type zzz"),
        "{msg}"
    );
    assert!(msg.contains("/nonexistent-plugin-dir"), "{msg}");
}

/// A shared object whose abi_stable library header announces another
/// abi_stable ABI version, as a plugin built with another abi_stable would:
/// written in C so that no abi_stable code of ours is in it.
#[test]
fn a_plugin_built_with_another_abi_stable_is_refused() {
    let ours = lnd_api::abi_stable::library::AbiHeader::VALUE;
    let magic: Vec<String> = ours.magic_string.iter().map(|b| b.to_string()).collect();
    let dir = lnet_tests::target_dir().join("plugin-builds");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let c = dir.join("other_abi_stable.c");
    let so = dir.join("libother_abi_stable.so");
    std::fs::write(
        &c,
        format!(
            "struct abi_header {{ unsigned char magic[32]; unsigned int major; unsigned int minor; }};\n\
             struct abi_header _1as_0lib_1header_0root_bmodule_bloader = {{ {{ {} }}, {}, {} }};\n",
            magic.join(", "),
            ours.abi_major + 1,
            ours.abi_minor
        ),
    )
    .expect("write C source");
    lnet_tests::run(
        std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&so)
            .arg(&c),
    );
    let mut h = host();
    let before = names(&h);
    let e = h.load(&so).expect_err("other abi_stable");
    let msg = e.to_string();
    assert!(
        matches!(&e, HostError::Load(lnd_api::LoadError::AbiMismatch { .. })),
        "{msg}"
    );
    let want = format!(
        "built against abi_stable ABI {}.{}, but this LNet uses lnd-api {} with abi_stable 0.11 (abi_stable ABI {}.{})",
        ours.abi_major + 1,
        ours.abi_minor,
        lnd_api::ABI_VERSION,
        ours.abi_major,
        ours.abi_minor
    );
    assert!(msg.contains(&want), "{msg}");
    assert_eq!(names(&h), before);
}
