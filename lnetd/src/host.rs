//! The plugin host: loads LND plugins by path, keeps the registry of plugins
//! and of the network types they provide, and makes LND objects for `net add`.
//!
//! Every refusal leaves the registry as it was. Plugins are never unloaded
//! from memory (`dlclose` is never called): `unload` deactivates a plugin that
//! has no NIs left; its code stays mapped, and an upgrade loads a new file
//! from a new path.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use lnd_api::{load_plugin, LndError, LndHandle, LoadError, LoadedPlugin};

/// An LND compiled into this binary (the loopback LND), registered with
/// `inventory::submit!`.
pub struct BuiltinLnd {
    /// Plugin name shown by `plugin show`.
    pub name: &'static str,
    /// Network types provided: name and LND type number.
    pub net_types: &'static [(&'static str, u8)],
    /// Makes the LND object of one of `net_types`.
    pub new_lnd: fn(&str) -> Result<LndHandle, LndError>,
}

inventory::collect!(BuiltinLnd);

/// Where a plugin's code comes from.
#[derive(Clone, Copy)]
enum Source {
    Builtin(&'static BuiltinLnd),
    Loaded(LoadedPlugin),
}

/// Whether a plugin may start new NIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginState {
    /// Usable.
    Active,
    /// Unloaded by the user; its code stays mapped.
    Inactive,
}

impl PluginState {
    /// As `plugin show` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginState::Active => "active",
            PluginState::Inactive => "inactive",
        }
    }
}

/// One registered plugin.
struct Plugin {
    name: String,
    version: String,
    abi_version: String,
    net_types: Vec<(String, u8)>,
    /// `None` for built-ins.
    path: Option<PathBuf>,
    /// Device and inode of the file, to refuse the same file twice.
    file_id: Option<(u64, u64)>,
    state: PluginState,
    source: Source,
    /// Number of NIs currently started through this plugin.
    nis: usize,
}

/// A description of a plugin, for `plugin show`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    /// Its name.
    pub name: String,
    /// Its own version.
    pub version: String,
    /// The lnd-api version it was built against.
    pub abi_version: String,
    /// The network type names it provides.
    pub net_types: Vec<String>,
    /// The file it was loaded from (`None` for built-ins).
    pub path: Option<PathBuf>,
    /// Active or inactive.
    pub state: PluginState,
    /// Whether it is compiled into this binary.
    pub builtin: bool,
}

/// Why the host refused a request.
#[derive(Debug)]
#[non_exhaustive]
pub enum HostError {
    /// The loader refused the file.
    Load(LoadError),
    /// The same file (by device and inode) is already loaded.
    AlreadyLoaded {
        /// The file given.
        path: PathBuf,
        /// The plugin loaded from it.
        name: String,
    },
    /// A plugin of that name is already registered.
    DuplicateName {
        /// The file given.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// A network type is already provided by another plugin.
    NetTypeTaken {
        /// The file given.
        path: PathBuf,
        /// The type.
        net_type: String,
        /// The plugin that provides it.
        owner: String,
    },
    /// No plugin of that name.
    NoSuchPlugin(String),
    /// Unload of a plugin that still serves NIs.
    InUse {
        /// The plugin.
        name: String,
        /// Its NI count.
        nis: usize,
    },
    /// Unload of a built-in LND.
    Builtin(String),
    /// No loaded plugin provides the network type, and none was found in the
    /// plugin path.
    NoProvider {
        /// The type.
        net_type: String,
        /// Where we looked.
        searched: Vec<PathBuf>,
    },
    /// The plugin providing the type was unloaded.
    Inactive {
        /// The type.
        net_type: String,
        /// The plugin.
        name: String,
    },
    /// The plugin failed to make its LND object.
    Lnd(LndError),
}

impl HostError {
    /// The errno a control client sees.
    pub fn errno(&self) -> i32 {
        use lnd_api::errno::*;
        match self {
            HostError::Load(e) => e.errno(),
            HostError::AlreadyLoaded { .. }
            | HostError::DuplicateName { .. }
            | HostError::NetTypeTaken { .. } => EEXIST,
            HostError::NoSuchPlugin(_) | HostError::NoProvider { .. } => ENOENT,
            HostError::InUse { .. } => EBUSY,
            HostError::Builtin(_) => EPERM,
            HostError::Inactive { .. } => ENODEV,
            HostError::Lnd(e) => e.errno,
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Load(e) => write!(f, "{e}"),
            HostError::AlreadyLoaded { path, name } => write!(
                f,
                "cannot load plugin {}: this file is already loaded as plugin {name}; nothing \
                 changed (to upgrade, unload {name} and load the new build from another path)",
                path.display()
            ),
            HostError::DuplicateName { path, name } => write!(
                f,
                "cannot load plugin {}: a plugin named {name} is already loaded; unload it first \
                 (lnetctl plugin unload {name})",
                path.display()
            ),
            HostError::NetTypeTaken {
                path,
                net_type,
                owner,
            } => write!(
                f,
                "cannot load plugin {}: network type {net_type} is already provided by plugin \
                 {owner}; unload {owner} first (lnetctl plugin unload {owner})",
                path.display()
            ),
            HostError::NoSuchPlugin(n) => {
                write!(f, "no plugin named {n} is loaded (see lnetctl plugin show)")
            }
            HostError::InUse { name, nis } => write!(
                f,
                "cannot unload plugin {name}: {nis} NI(s) still use it; delete those nets first \
                 (lnetctl net del --net NET)"
            ),
            HostError::Builtin(n) => write!(f, "cannot unload plugin {n}: it is built into LNet"),
            HostError::NoProvider { net_type, searched } => {
                write!(f, "no loaded plugin provides network type {net_type}, and no plugin in the plugin path does")?;
                if searched.is_empty() {
                    write!(f, " (the plugin path is empty)")?;
                } else {
                    let dirs: Vec<String> =
                        searched.iter().map(|p| p.display().to_string()).collect();
                    write!(f, " (searched {})", dirs.join(", "))?;
                }
                write!(f, "; load one with lnetctl plugin load PATH")
            }
            HostError::Inactive { net_type, name } => write!(
                f,
                "network type {net_type} is provided by plugin {name}, which was unloaded; load \
                 it again from its file (lnetctl plugin load PATH)"
            ),
            HostError::Lnd(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HostError {}

/// The registry of LND plugins of one LNet instance.
pub struct PluginHost {
    plugins: Vec<Plugin>,
    /// Network type name to index in `plugins`.
    by_type: BTreeMap<String, usize>,
    /// Directories searched for a plugin providing an unknown network type.
    plugin_path: Vec<PathBuf>,
}

impl fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginHost")
            .field("plugins", &self.list())
            .finish()
    }
}

#[cfg(unix)]
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl PluginHost {
    /// A host with the built-in LNDs registered and the given search path.
    pub fn new(plugin_path: Vec<PathBuf>) -> Self {
        let mut host = PluginHost {
            plugins: Vec::new(),
            by_type: BTreeMap::new(),
            plugin_path,
        };
        for b in inventory::iter::<BuiltinLnd> {
            let idx = host.plugins.len();
            for (t, _) in b.net_types {
                host.by_type.insert((*t).to_string(), idx);
            }
            host.plugins.push(Plugin {
                name: b.name.to_string(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                abi_version: lnd_api::ABI_VERSION.to_string(),
                net_types: b
                    .net_types
                    .iter()
                    .map(|(n, t)| ((*n).to_string(), *t))
                    .collect(),
                path: None,
                file_id: None,
                state: PluginState::Active,
                source: Source::Builtin(b),
                nis: 0,
            });
        }
        host
    }

    /// The directories searched by [`PluginHost::lnd_for`].
    pub fn plugin_path(&self) -> &[PathBuf] {
        &self.plugin_path
    }

    /// Loads a plugin from a file. On any error nothing changes.
    pub fn load(&mut self, path: &Path) -> Result<PluginInfo, HostError> {
        let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let id = file_id(&abs);
        if let Some(p) = self
            .plugins
            .iter()
            .find(|p| id.is_some() && p.file_id == id)
        {
            if p.state == PluginState::Active {
                return Err(HostError::AlreadyLoaded {
                    path: path.to_path_buf(),
                    name: p.name.clone(),
                });
            }
        }
        let loaded = load_plugin(path).map_err(HostError::Load)?;
        self.register(path, &abs, id, loaded)
    }

    /// Registers a plugin that passed the loader's checks (or reactivates
    /// the unloaded entry of the same file). On any error nothing changes.
    fn register(
        &mut self,
        path: &Path,
        abs: &Path,
        id: Option<(u64, u64)>,
        loaded: LoadedPlugin,
    ) -> Result<PluginInfo, HostError> {
        let name = loaded.name().to_string();
        // A re-load of the same file after unload reactivates it.
        if let Some(i) = self
            .plugins
            .iter()
            .position(|p| id.is_some() && p.file_id == id)
        {
            self.check_types(path, &loaded, Some(i))?;
            let p = &mut self.plugins[i];
            p.state = PluginState::Active;
            for (t, _) in &p.net_types {
                self.by_type.insert(t.clone(), i);
            }
            return Ok(self.info(i));
        }
        if let Some(p) = self
            .plugins
            .iter()
            .find(|p| p.name == name && p.state == PluginState::Active)
        {
            return Err(HostError::DuplicateName {
                path: path.to_path_buf(),
                name: p.name.clone(),
            });
        }
        self.check_types(path, &loaded, None)?;
        let idx = self.plugins.len();
        let net_types: Vec<(String, u8)> = loaded
            .net_types()
            .iter()
            .map(|d| (d.name.as_str().to_string(), d.lnd_type))
            .collect();
        for (t, _) in &net_types {
            self.by_type.insert(t.clone(), idx);
        }
        self.plugins.push(Plugin {
            name,
            version: loaded.version().to_string(),
            abi_version: loaded.abi_version().to_string(),
            net_types,
            path: Some(abs.to_path_buf()),
            file_id: id,
            state: PluginState::Active,
            source: Source::Loaded(loaded),
            nis: 0,
        });
        Ok(self.info(idx))
    }

    fn check_types(
        &self,
        path: &Path,
        loaded: &LoadedPlugin,
        except: Option<usize>,
    ) -> Result<(), HostError> {
        for d in loaded.net_types() {
            if let Some(&owner) = self.by_type.get(d.name.as_str()) {
                if Some(owner) != except && self.plugins[owner].state == PluginState::Active {
                    return Err(HostError::NetTypeTaken {
                        path: path.to_path_buf(),
                        net_type: d.name.as_str().to_string(),
                        owner: self.plugins[owner].name.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Deactivates a plugin that serves no NI.
    pub fn unload(&mut self, name: &str) -> Result<PluginInfo, HostError> {
        let i = self
            .plugins
            .iter()
            .position(|p| p.name == name && p.state == PluginState::Active)
            .ok_or_else(|| HostError::NoSuchPlugin(name.to_string()))?;
        let p = &mut self.plugins[i];
        if matches!(p.source, Source::Builtin(_)) {
            return Err(HostError::Builtin(name.to_string()));
        }
        if p.nis > 0 {
            return Err(HostError::InUse {
                name: name.to_string(),
                nis: p.nis,
            });
        }
        p.state = PluginState::Inactive;
        Ok(self.info(i))
    }

    fn info(&self, i: usize) -> PluginInfo {
        let p = &self.plugins[i];
        PluginInfo {
            name: p.name.clone(),
            version: p.version.clone(),
            abi_version: p.abi_version.clone(),
            net_types: p.net_types.iter().map(|(n, _)| n.clone()).collect(),
            path: p.path.clone(),
            state: p.state,
            builtin: matches!(p.source, Source::Builtin(_)),
        }
    }

    /// Every registered plugin, built-ins first, then in load order.
    pub fn list(&self) -> Vec<PluginInfo> {
        (0..self.plugins.len()).map(|i| self.info(i)).collect()
    }

    /// The LND type number of a network type name, if a registered plugin
    /// provides it.
    pub fn lnd_type_of(&self, net_type: &str) -> Option<u8> {
        let &i = self.by_type.get(net_type)?;
        self.plugins[i]
            .net_types
            .iter()
            .find(|(n, _)| n == net_type)
            .map(|(_, t)| *t)
    }

    /// Makes the LND object for a network type, loading a plugin from the
    /// plugin path when no registered plugin provides it. Returns the plugin
    /// name (for NI accounting) and the object.
    pub fn lnd_for(&mut self, net_type: &str) -> Result<(String, LndHandle), HostError> {
        if !self.by_type.contains_key(net_type) {
            self.search_path_for(net_type)?;
        }
        let &i = self
            .by_type
            .get(net_type)
            .ok_or_else(|| HostError::NoProvider {
                net_type: net_type.to_string(),
                searched: self.plugin_path.clone(),
            })?;
        let p = &self.plugins[i];
        if p.state != PluginState::Active {
            return Err(HostError::Inactive {
                net_type: net_type.to_string(),
                name: p.name.clone(),
            });
        }
        let lnd = match p.source {
            Source::Builtin(b) => (b.new_lnd)(net_type),
            Source::Loaded(l) => l.new_lnd(net_type),
        }
        .map_err(HostError::Lnd)?;
        Ok((p.name.clone(), lnd))
    }

    /// Counts an NI started (`+1`) or stopped (`-1`) through a plugin.
    pub fn account_ni(&mut self, plugin: &str, started: bool) {
        if let Some(p) = self.plugins.iter_mut().find(|p| p.name == plugin) {
            if started {
                p.nis += 1;
            } else {
                p.nis = p.nis.saturating_sub(1);
            }
        }
    }

    /// Looks for a `.so` in the plugin path whose root module provides
    /// `net_type`, and loads it. Files that fail to load are skipped (and
    /// logged); nothing changes unless one succeeds.
    fn search_path_for(&mut self, net_type: &str) -> Result<(), HostError> {
        let mut candidates = Vec::new();
        for dir in &self.plugin_path {
            let Ok(rd) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "so"))
                .collect();
            files.sort();
            // Prefer files whose name mentions the type (liblnd_sock.so for tcp is
            // found by trying; this only orders the attempts).
            files.sort_by_key(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains(net_type))
            });
            candidates.extend(files);
        }
        for f in candidates {
            let id = file_id(&f);
            if self.plugins.iter().any(|p| id.is_some() && p.file_id == id) {
                continue;
            }
            match load_plugin(&f) {
                Ok(l) if l.net_types().iter().any(|d| d.name.as_str() == net_type) => {
                    let abs = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
                    self.register(&f, &abs, id, l)?;
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(file = %f.display(), "plugin search: {e}"),
            }
        }
        Err(HostError::NoProvider {
            net_type: net_type.to_string(),
            searched: self.plugin_path.clone(),
        })
    }
}
