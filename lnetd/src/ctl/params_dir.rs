//! `params_dir=PATH` (off unless given): lnetd keeps one file per module
//! parameter, `PATH/MODULE/NAME`, holding the value in use and a newline as
//! `/sys/module/MODULE/parameters/NAME` does, for scripts that read files
//! (`cat $dir/lnet/lnet_retry_count`). The values are `lctl get_param`'s:
//! the run-time tunables, the router and start-up parameters, the loaded
//! plugins' parameters. The tree is rewritten after every request that may
//! change one (`set`, `lnet configure|unconfigure`, `net add`, plugin load
//! and unload); the files of a parameter no longer reported (an unloaded
//! plugin's) are removed. Writing never fails a request: a failure is
//! logged.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use liblnetconfig::lctl::RUNTIME_PARAMS;
use liblnetconfig::proto::{Op, ReplyBody};

use super::Shared;

/// The directory, when `params_dir` was given.
fn dir(shared: &Shared) -> Option<PathBuf> {
    shared
        .node_cfg
        .params
        .iter()
        .find(|(n, _)| n == "params_dir")
        .map(|(_, v)| PathBuf::from(v))
        .filter(|p| !p.as_os_str().is_empty())
}

/// Whether `op` may change a parameter's value or the set of parameters.
pub(super) fn changes(op: &Op) -> bool {
    matches!(
        op,
        Op::GlobalSet(_)
            | Op::Configure { .. }
            | Op::Unconfigure
            | Op::NetAdd(_)
            | Op::PluginLoad { .. }
            | Op::PluginUnload { .. }
            | Op::RouterBuffersSet { .. }
    )
}

/// Every (module, name, value) lnetd reports now.
fn values(shared: &Shared) -> Vec<(String, String, String)> {
    let node = shared
        .node
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut out = Vec::new();
    let reply = super::config::handle(shared, node.as_deref(), Op::GlobalShow);
    if let Ok(r) = reply {
        if let Ok(ReplyBody::Global(g)) = r.result {
            for p in RUNTIME_PARAMS {
                out.push((
                    "lnet".to_string(),
                    p.name.to_string(),
                    (p.get)(&g).to_string(),
                ));
            }
        }
    }
    for v in super::param_values(&shared.node_cfg, node.as_deref()) {
        if !out.iter().any(|(m, n, _)| *m == v.module && *n == v.name) {
            out.push((v.module, v.name, v.value));
        }
    }
    out
}

fn write_one(dir: &Path, module: &str, name: &str, value: &str) -> io::Result<()> {
    let mdir = dir.join(module);
    fs::create_dir_all(&mdir)?;
    let tmp = mdir.join(format!(".{name}.tmp"));
    fs::write(&tmp, format!("{value}\n"))?;
    fs::rename(&tmp, mdir.join(name))
}

/// Rewrites the tree (nothing when `params_dir` was not given).
pub(super) fn refresh(shared: &Shared) {
    let Some(dir) = dir(shared) else {
        return;
    };
    let vals = values(shared);
    let mut result = Ok(());
    for (m, n, v) in &vals {
        if let Err(e) = write_one(&dir, m, n, v) {
            result = Err(e);
        }
    }
    // Remove what is no longer reported.
    if let Ok(modules) = fs::read_dir(&dir) {
        for m in modules.flatten() {
            let module = m.file_name().to_string_lossy().into_owned();
            let Ok(files) = fs::read_dir(m.path()) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if !vals.iter().any(|(vm, vn, _)| *vm == module && *vn == name) {
                    let _ = fs::remove_file(f.path());
                }
            }
        }
    }
    if let Err(e) = result {
        tracing::warn!(dir = %dir.display(), "cannot write the parameter files: {e}");
    }
}
