//! The plugin host: loads LND plugins by path, keeps the registry of plugins
//! and of the network types they provide, and makes LND objects for `net add`.
//!
//! Opening a plugin file and calling into the plugin (its parameters, its
//! LND constructor) are split from the registry's bookkeeping
//! ([`PluginHost::prepare`], [`LndMaker::make`]) so the node calls them
//! without its lock held: a `.so` on a slow filesystem or a slow plugin
//! stalls only the request that needs it.
//!
//! Every refusal leaves the registry as it was. Plugins are never unloaded
//! from memory (`dlclose` is never called): `unload` deactivates a plugin that
//! has no NIs left; its code stays mapped, and an upgrade loads a new file
//! from a new path.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use lnd_api::{load_plugin, LndError, LndHandle, LoadError, LoadedPlugin, Tunable};

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
    /// The values given for its declared parameters, handed to it at load.
    params: Vec<Tunable>,
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
    /// The plugin's parameters could not be read or were refused.
    Params {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
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
            HostError::Params { .. } => EINVAL,
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
                write!(
                    f,
                    "no loaded plugin provides network type {net_type}, and the plugin path has \
                     no {}",
                    plugin_file_names(net_type).join(" or ")
                )?;
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
            HostError::Params { path, detail } => write!(
                f,
                "cannot load plugin {}: its parameters: {detail}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for HostError {}

/// A plugin file opened, its parameters handed to it, ready for
/// [`PluginHost::register_prepared`] (see [`PluginHost::prepare`]).
pub struct Prepared {
    path: PathBuf,
    abs: PathBuf,
    id: Option<(u64, u64)>,
    loaded: LoadedPlugin,
    params: Vec<Tunable>,
}

impl Prepared {
    /// Whether the plugin provides network type `net_type`.
    pub fn provides(&self, net_type: &str) -> bool {
        self.loaded
            .net_types()
            .iter()
            .any(|d| d.name.as_str() == net_type)
    }

    /// The file it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What makes the LND object of a registered plugin's network type, taken
/// from the registry so it can be called without the node's lock.
#[derive(Clone)]
pub struct LndMaker {
    plugin: String,
    source: Source,
}

impl LndMaker {
    /// The plugin's name (for NI accounting).
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// Calls the plugin's constructor for `net_type`.
    pub fn make(&self, net_type: &str) -> Result<LndHandle, HostError> {
        match self.source {
            Source::Builtin(b) => (b.new_lnd)(net_type),
            Source::Loaded(l) => l.new_lnd(net_type),
        }
        .map_err(HostError::Lnd)
    }
}

/// The registry of LND plugins of one LNet instance.
pub struct PluginHost {
    plugins: Vec<Plugin>,
    /// Network type name to index in `plugins`.
    by_type: BTreeMap<String, usize>,
    /// Directories searched for a plugin providing an unknown network type.
    plugin_path: Vec<PathBuf>,
    /// Values of plugin parameters (checked by lnetd at start), handed to
    /// each plugin that declares them when it is loaded.
    plugin_params: Vec<PluginParam>,
}

/// A value for a parameter some plugin declares (`options ksocklnd
/// sock_timeout=65`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginParam {
    /// The module (`ksocklnd`).
    pub module: String,
    /// The parameter (`sock_timeout`).
    pub name: String,
    /// The value, checked against the declaration.
    pub value: String,
}

/// Upstream's LND names of the network types whose LND is not named after
/// the type (socklnd serves `tcp`).
const LND_NAMES: &[(&str, &str)] = &[("tcp", "sock")];

/// The file names under which the plugin of `net_type` is looked up in the
/// plugin path, in order: `liblnd_<type>.so`, `lib<type>lnd.so`, and for
/// upstream's types also by LND name (`liblnd_sock.so`, `libsocklnd.so` for
/// `tcp`). Nothing else in the plugin path is ever opened.
pub fn plugin_file_names(net_type: &str) -> Vec<String> {
    let mut stems = vec![net_type];
    stems.extend(
        LND_NAMES
            .iter()
            .filter(|(t, _)| *t == net_type)
            .map(|(_, n)| *n),
    );
    let mut out = Vec::new();
    for stem in stems {
        out.push(format!("liblnd_{stem}.so"));
        out.push(format!("lib{stem}lnd.so"));
    }
    out
}

/// Whether a file name follows the plugin naming convention
/// (`liblnd_<type>.so` or `lib<type>lnd.so`).
pub fn is_plugin_file_name(name: &str) -> bool {
    let Some(stem) = name.strip_prefix("lib").and_then(|n| n.strip_suffix(".so")) else {
        return false;
    };
    let ok = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric());
    stem.strip_prefix("lnd_").is_some_and(ok) || stem.strip_suffix("lnd").is_some_and(ok)
}

/// Every plugin in the plugin path, by the naming convention (for lnetd to
/// read their parameter declarations at start): the files that loaded, and
/// those that did not with why. Only convention-named files are opened;
/// the same file (by device and inode) once.
pub fn discover_plugins(plugin_path: &[PathBuf]) -> (Vec<(PathBuf, LoadedPlugin)>, Vec<LoadError>) {
    let mut seen = Vec::new();
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for dir in plugin_path {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_str().is_some_and(is_plugin_file_name))
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            let id = file_id(&f);
            if id.is_some() && seen.contains(&id) {
                continue;
            }
            seen.push(id);
            match load_plugin(&f) {
                Ok(l) => ok.push((f, l)),
                Err(e) => bad.push(e),
            }
        }
    }
    (ok, bad)
}

/// The parameter declarations of the plugins in the plugin path, read the
/// first time they are asked for (lnetd: a parameter that is not one of its
/// own), and only from the files named as plugins; for checking module
/// parameters before any plugin is loaded.
pub struct PluginDecls {
    path: Vec<PathBuf>,
    decls: Option<Vec<&'static lnd_api::ParamDecl>>,
    /// Plugin files that did not load, for messages.
    broken: Vec<String>,
}

impl PluginDecls {
    /// Declarations read from the plugins of `path` when needed.
    pub fn from_path(path: Vec<PathBuf>) -> Self {
        PluginDecls {
            path,
            decls: None,
            broken: Vec::new(),
        }
    }

    /// Fixed declarations, not read from plugin files (tests).
    pub fn fixed(decls: &'static [lnd_api::ParamDecl]) -> Self {
        PluginDecls {
            path: Vec::new(),
            decls: Some(decls.iter().collect()),
            broken: Vec::new(),
        }
    }

    /// The declarations, read from the plugin files the first time.
    pub fn get(&mut self) -> Result<&[&'static lnd_api::ParamDecl], String> {
        if self.decls.is_none() {
            let (ok, bad) = discover_plugins(&self.path);
            let mut decls = Vec::new();
            for (file, plugin) in ok {
                match plugin.param_decls() {
                    Ok(d) => decls.extend(d.iter()),
                    Err(e) => self.broken.push(format!("{}: {e}", file.display())),
                }
            }
            self.broken.extend(bad.iter().map(|e| e.to_string()));
            self.decls = Some(decls);
        }
        Ok(self.decls.as_deref().unwrap_or_default())
    }

    /// The plugin modules found, for messages.
    pub fn modules(&mut self) -> Vec<&'static str> {
        let mut m: Vec<&'static str> = self
            .get()
            .map(|d| d.iter().map(|d| d.module()).collect())
            .unwrap_or_default();
        m.sort_unstable();
        m.dedup();
        m
    }

    /// Where the plugins were looked for, and what could not be read.
    pub fn searched(&self) -> String {
        let dirs: Vec<String> = self.path.iter().map(|d| d.display().to_string()).collect();
        let mut s = format!(
            "plugins looked for in {}",
            if dirs.is_empty() {
                "(no directory)".to_string()
            } else {
                dirs.join(":")
            }
        );
        for b in &self.broken {
            s.push_str(&format!("; skipped {b}"));
        }
        s
    }
}

/// The values of `params` meant for a plugin that declares `decls`, checked
/// and in canonical form.
fn params_for(
    decls: &[lnd_api::ParamDecl],
    params: &[PluginParam],
) -> Result<Vec<Tunable>, String> {
    let mut out: Vec<Tunable> = Vec::new();
    for p in params {
        if let Some(d) = lnd_api::params::find(decls, &p.module, &p.name) {
            let v = d.check(&p.value).map_err(|e| e.to_string())?;
            out.retain(|t| t.name.as_str() != p.name);
            out.push(Tunable::new(p.name.clone(), v));
        }
    }
    Ok(out)
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
            plugin_params: Vec::new(),
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
                params: Vec::new(),
            });
        }
        host
    }

    /// Values for plugin parameters, handed to the plugins that declare them
    /// as they are loaded (lnetd's `--param`/`--config`, checked at start).
    pub fn set_plugin_params(&mut self, params: Vec<PluginParam>) {
        self.plugin_params = params;
    }

    /// The values handed to a plugin for its parameters (canonical form):
    /// what it gets at NI start-up besides the lnet module parameters.
    pub fn params_of(&self, plugin: &str) -> Vec<Tunable> {
        self.plugins
            .iter()
            .find(|p| p.name == plugin)
            .map(|p| p.params.clone())
            .unwrap_or_default()
    }

    /// The directories searched by [`PluginHost::lnd_for`].
    pub fn plugin_path(&self) -> &[PathBuf] {
        &self.plugin_path
    }

    /// Loads a plugin from a file. On any error nothing changes. (The node
    /// does the same in three steps, opening the file without its lock:
    /// [`PluginHost::check_not_loaded`], [`PluginHost::prepare`],
    /// [`PluginHost::register_prepared`].)
    pub fn load(&mut self, path: &Path) -> Result<PluginInfo, HostError> {
        self.check_not_loaded(path)?;
        let prepared = Self::prepare(path, &self.plugin_params)?;
        self.register_prepared(prepared)
    }

    /// Refuses a file that is loaded and active already (by device and
    /// inode), before anything opens it again.
    pub fn check_not_loaded(&self, path: &Path) -> Result<(), HostError> {
        let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let id = file_id(&abs);
        match self
            .plugins
            .iter()
            .find(|p| id.is_some() && p.file_id == id && p.state == PluginState::Active)
        {
            Some(p) => Err(HostError::AlreadyLoaded {
                path: path.to_path_buf(),
                name: p.name.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The values for plugin parameters, for [`PluginHost::prepare`].
    pub fn plugin_params(&self) -> &[PluginParam] {
        &self.plugin_params
    }

    /// Every parameter the active loaded plugins declare, with the value
    /// each uses: (module, name, value, given at start-up). A value given
    /// wins over the declared default.
    pub fn param_values(&self) -> Vec<(String, String, String, bool)> {
        let mut out = Vec::new();
        for p in self
            .plugins
            .iter()
            .filter(|p| p.state == PluginState::Active)
        {
            let Source::Loaded(l) = &p.source else {
                continue;
            };
            let Ok(decls) = l.param_decls() else {
                continue;
            };
            for d in decls {
                let given = p.params.iter().find(|t| t.name.as_str() == d.name.as_str());
                let (value, given) = match given {
                    Some(t) => (t.value.to_string(), true),
                    None => (d.default.to_string(), false),
                };
                out.push((d.module.to_string(), d.name.to_string(), value, given));
            }
        }
        out
    }

    /// Opens a plugin file (the loader's checks) and hands the plugin the
    /// values of `plugin_params` meant for the parameters it declares. Needs
    /// no registry: the node calls it without its lock held.
    pub fn prepare(path: &Path, plugin_params: &[PluginParam]) -> Result<Prepared, HostError> {
        let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let id = file_id(&abs);
        let loaded = load_plugin(path).map_err(HostError::Load)?;
        let param_err = |detail: String| HostError::Params {
            path: path.to_path_buf(),
            detail,
        };
        let decls = loaded.param_decls().map_err(param_err)?;
        let params = params_for(decls, plugin_params).map_err(param_err)?;
        loaded
            .set_params(&params)
            .map_err(|e| param_err(e.to_string()))?;
        Ok(Prepared {
            path: path.to_path_buf(),
            abs,
            id,
            loaded,
            params,
        })
    }

    /// Registers a plugin that passed the loader's checks (or reactivates
    /// the unloaded entry of the same file). On any error nothing changes.
    pub fn register_prepared(&mut self, prepared: Prepared) -> Result<PluginInfo, HostError> {
        let Prepared {
            path,
            abs,
            id,
            loaded,
            params,
        } = prepared;
        let path = path.as_path();
        // Loaded meanwhile by another request (the file was opened without
        // the lock).
        self.check_not_loaded(path)?;
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
            path: Some(abs),
            file_id: id,
            state: PluginState::Active,
            source: Source::Loaded(loaded),
            nis: 0,
            params,
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

    /// The value of parameter `name` of the active plugin that serves
    /// `net_type`: the value given at start, else the plugin's declared
    /// default. `None` when no active plugin serves the type (as upstream's
    /// `/sys/module/<lnd>/parameters/<name>` is missing when the LND module
    /// is not loaded) or when it declares no such parameter.
    pub fn param_of_type(&self, net_type: &str, name: &str) -> Option<String> {
        let &i = self.by_type.get(net_type)?;
        let p = &self.plugins[i];
        if p.state != PluginState::Active {
            return None;
        }
        if let Some(t) = p.params.iter().find(|t| t.name.as_str() == name) {
            return Some(t.value.as_str().to_string());
        }
        match &p.source {
            Source::Loaded(l) => l
                .param_decls()
                .ok()?
                .iter()
                .find(|d| d.name() == name)
                .map(|d| d.default().to_string()),
            Source::Builtin(_) => None,
        }
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
        let maker = self.lnd_maker(net_type)?;
        Ok((maker.plugin.clone(), maker.make(net_type)?))
    }

    /// Whether a registered plugin provides `net_type` (active or not).
    pub fn provides(&self, net_type: &str) -> bool {
        self.by_type.contains_key(net_type)
    }

    /// What makes the LND object of `net_type`, from the registered plugin
    /// providing it (see [`PluginHost::lnd_for`]; this one never opens a
    /// file or calls the plugin).
    pub fn lnd_maker(&self, net_type: &str) -> Result<LndMaker, HostError> {
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
        Ok(LndMaker {
            plugin: p.name.clone(),
            source: p.source,
        })
    }

    /// The files of the plugin path named for `net_type`
    /// ([`plugin_file_names`]) that are not registered yet, in search order:
    /// what [`PluginHost::prepare`] is tried on when no registered plugin
    /// provides the type.
    pub fn candidates(&self, net_type: &str) -> Vec<PathBuf> {
        let names = plugin_file_names(net_type);
        let mut out = Vec::new();
        for dir in &self.plugin_path {
            for n in &names {
                let f = dir.join(n);
                if !f.is_file() {
                    continue;
                }
                let id = file_id(&f);
                if self.plugins.iter().any(|p| id.is_some() && p.file_id == id) {
                    continue;
                }
                out.push(f);
            }
        }
        out
    }

    /// The refusal when no registered plugin and no file of the plugin path
    /// provides `net_type`.
    pub fn no_provider(&self, net_type: &str) -> HostError {
        HostError::NoProvider {
            net_type: net_type.to_string(),
            searched: self.plugin_path.clone(),
        }
    }

    /// The filter (lnd-api's `lnd-api.ni-filter.v1`) of the first active
    /// loaded plugin that offers one (lnd-fault).
    pub fn filter(&self) -> Result<Option<lnd_api::FilterHandle>, HostError> {
        for p in &self.plugins {
            if let (PluginState::Active, Source::Loaded(l)) = (p.state, &p.source) {
                if l.offers_filter() {
                    return l.ni_filter().map_err(HostError::Lnd);
                }
            }
        }
        Ok(None)
    }

    /// Whether an active loaded plugin offers the filter extension (without
    /// making its filter object).
    pub fn offers_filter(&self) -> bool {
        self.plugins.iter().any(|p| {
            matches!((p.state, &p.source), (PluginState::Active, Source::Loaded(l)) if l.offers_filter())
        })
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

    /// Looks for the plugin of `net_type` in the plugin path by name
    /// ([`plugin_file_names`]) and loads it; no other file is opened. A
    /// file found that does not load, or does not provide the type, is
    /// refused with why.
    fn search_path_for(&mut self, net_type: &str) -> Result<(), HostError> {
        for f in self.candidates(net_type) {
            let prepared = Self::prepare(&f, &self.plugin_params)?;
            if !prepared.provides(net_type) {
                tracing::warn!(
                    file = %f.display(),
                    "plugin search: named for network type {net_type} but does not provide it"
                );
                continue;
            }
            self.register_prepared(prepared)?;
            return Ok(());
        }
        Err(self.no_provider(net_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_files_are_named_after_the_network_type() {
        assert_eq!(plugin_file_names("vnd"), ["liblnd_vnd.so", "libvndlnd.so"]);
        assert_eq!(
            plugin_file_names("tcp"),
            [
                "liblnd_tcp.so",
                "libtcplnd.so",
                "liblnd_sock.so",
                "libsocklnd.so"
            ]
        );
        for n in ["liblnd_sock.so", "libo2iblnd.so", "liblnd_vnd.so"] {
            assert!(is_plugin_file_name(n), "{n}");
        }
        for n in [
            "libvnd_extra.so",
            "libunrelated.so",
            "liblnd_.so",
            "liblnd.so",
            "liblnd_vnd.so.1",
            "lnd_vnd.so",
            "libchanged_lnd.so",
        ] {
            assert!(!is_plugin_file_name(n), "{n}");
        }
    }

    /// Only convention-named files are opened; a directory of other
    /// libraries yields nothing, and a convention-named file that is not a
    /// plugin is reported, not skipped silently.
    #[test]
    fn discovery_opens_only_plugin_names() {
        let dir = std::env::temp_dir().join(format!("lnetd-discover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("libunrelated.so"), b"not even ELF").expect("write");
        let (ok, bad) = discover_plugins(std::slice::from_ref(&dir));
        assert!(ok.is_empty() && bad.is_empty());
        std::fs::write(dir.join("liblnd_bogus.so"), b"not even ELF").expect("write");
        let (ok, bad) = discover_plugins(std::slice::from_ref(&dir));
        assert!(ok.is_empty());
        assert_eq!(bad.len(), 1);
        assert!(bad[0].to_string().contains("liblnd_bogus.so"), "{}", bad[0]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
