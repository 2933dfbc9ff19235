//! The plugin's root module, its export, its loading, and extensions.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use abi_stable::abi_stability::abi_checking::check_layout_compatibility;
use abi_stable::library::{lib_header_from_path, LibraryError, RootModule};
use abi_stable::package_version_strings;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr};
use abi_stable::type_layout::TypeLayout;
use abi_stable::StableAbi;

use abi_stable::sabi_trait::prelude::TD_Opaque;

use crate::lnd::{
    GetSink, Lnd, LndFfiBox, LndFfi_TO, LndHandle, LndObj, LndShim, LndSpanFfiBox, LndSpanFfi_TO,
    SpanIo, GET_SINK, SPAN_IO,
};
use crate::params::{LndParams, ParamDecl, PARAMS};
use crate::types::{LndError, NetTypeDesc, Tunable};

/// The version of this interface crate: the ABI a plugin was built against.
pub const ABI_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version of abi_stable this crate was built with (as `Cargo.lock` pins it).
pub const ABI_STABLE_VERSION: &str = "0.11";

/// The root module every LND plugin exports (a prefix type: fields are only
/// appended, the marked one closes version 1.0.0).
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = LndModRef)))]
#[sabi(missing_field(panic))]
pub struct LndMod {
    /// The plugin's name (`lnd-sock`).
    pub name: RStr<'static>,
    /// The plugin's own version.
    pub version: RStr<'static>,
    /// [`ABI_VERSION`] as the plugin saw it when it was built.
    pub abi_version: RStr<'static>,
    /// The network types it provides.
    pub net_types: RSlice<'static, NetTypeDesc>,
    /// Makes the LND object for one of `net_types` (by name).
    pub new_lnd: extern "C" fn(net_type: RStr<'_>) -> RResult<LndFfiBox, LndError>,
    /// A named, layout-checked extension; see [`extension`].
    #[sabi(last_prefix_field)]
    pub get_extension: extern "C" fn(name: RStr<'_>) -> ROption<Extension>,
}

impl RootModule for LndModRef {
    abi_stable::declare_root_module_statics! {LndModRef}
    const BASE_NAME: &'static str = "lnd";
    const NAME: &'static str = "lnd-api LND plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// An extension a plugin offers: a `'static` value and the layout of its type.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct Extension {
    layout: &'static TypeLayout,
    value: *const (),
}

// SAFETY: `value` points at a `'static` value of a `Sync` type (enforced by
// `Extension::new`), so sharing it across threads is sound.
unsafe impl Send for Extension {}
// SAFETY: as above.
unsafe impl Sync for Extension {}

impl Extension {
    /// Offers `value` as an extension.
    pub fn new<T: StableAbi + Sync + 'static>(value: &'static T) -> Self {
        Extension {
            layout: T::LAYOUT,
            value: (value as *const T).cast(),
        }
    }
}

/// Why an extension could not be used.
#[derive(Debug)]
pub enum ExtensionError {
    /// The plugin does not offer it.
    Missing,
    /// It is offered with another layout than the host expects.
    Layout(String),
}

/// Looks up a named extension in a plugin and checks its layout against `T`.
pub fn extension<T: StableAbi + 'static>(
    module: LndModRef,
    name: &str,
) -> Result<&'static T, ExtensionError> {
    let ext = match (module.get_extension())(name.into()) {
        ROption::RSome(e) => e,
        ROption::RNone => return Err(ExtensionError::Missing),
    };
    check_layout_compatibility(T::LAYOUT, ext.layout)
        .map_err(|e| ExtensionError::Layout(e.to_string()))?;
    // SAFETY: the layout checker just proved that the pointee's type is
    // layout-compatible with `T`, and `Extension::new` only takes `'static`
    // references, so the pointer is valid for `'static` and aligned for `T`.
    Ok(unsafe { &*ext.value.cast::<T>() })
}

/// Used by [`crate::export_lnd_plugin!`]: calls the plugin's constructor inside
/// `catch_unwind` and wraps the result in its lnd-api 1.0 form (for hosts
/// that do not look for [`SPAN_IO`]).
#[doc(hidden)]
pub fn new_lnd_shim<L: Lnd>(
    net_type: RStr<'_>,
    ctor: fn(&str) -> Result<L, LndError>,
) -> RResult<LndFfiBox, LndError> {
    match std::panic::catch_unwind(|| ctor(net_type.as_str())) {
        Ok(Ok(l)) => RResult::ROk(LndFfi_TO::from_value(LndShim(l), TD_Opaque)),
        Ok(Err(e)) => RResult::RErr(e),
        Err(p) => RResult::RErr(LndError::panicked("plugin constructor", &*p)),
    }
}

/// Used by [`crate::export_lnd_plugin!`]: as [`new_lnd_shim`], in the lnd-api
/// 1.1 form offered through [`SPAN_IO`].
#[doc(hidden)]
pub fn new_lnd_span_shim<L: Lnd>(
    net_type: RStr<'_>,
    ctor: fn(&str) -> Result<L, LndError>,
) -> RResult<LndSpanFfiBox, LndError> {
    match std::panic::catch_unwind(|| ctor(net_type.as_str())) {
        Ok(Ok(l)) => RResult::ROk(LndSpanFfi_TO::from_value(LndShim(l), TD_Opaque)),
        Ok(Err(e)) => RResult::RErr(e),
        Err(p) => RResult::RErr(LndError::panicked("plugin constructor", &*p)),
    }
}

/// Used by [`crate::export_lnd_plugin!`]: the [`SPAN_IO`] extension when
/// `name` asks for it.
#[doc(hidden)]
pub fn span_io_extension(name: &str, value: &'static SpanIo) -> Option<Extension> {
    (name == SPAN_IO).then(|| Extension::new(value))
}

/// Used by [`crate::export_lnd_plugin!`]: the [`GET_SINK`] extension when
/// `name` asks for it and the plugin's LND wants GET sinks.
#[doc(hidden)]
pub fn get_sink_extension(name: &str, value: &'static Option<GetSink>) -> Option<Extension> {
    match value {
        Some(v) if name == GET_SINK => Some(Extension::new(v)),
        _ => None,
    }
}

/// Used by [`crate::export_lnd_plugin!`]: the [`crate::params::PARAMS`]
/// extension when `name` asks for it.
#[doc(hidden)]
pub fn params_extension(name: &str, value: &'static LndParams) -> Option<Extension> {
    (name == PARAMS).then(|| Extension::new(value))
}

/// Used by [`crate::export_lnd_plugin!`]: the given expression, or the default
/// when none was given.
#[doc(hidden)]
#[macro_export]
macro_rules! __lnd_api_or {
    (; $default:expr) => {
        $default
    };
    ($given:expr ; $default:expr) => {
        $given
    };
}

/// Used by [`crate::export_lnd_plugin!`]: builds the library header.
#[doc(hidden)]
pub const fn lib_header(
    ctor: extern "C" fn() -> abi_stable::library::RootModuleResult,
) -> abi_stable::library::LibHeader {
    // SAFETY: `ctor` is the erased constructor generated by
    // `export_lnd_plugin!`, which returns an `LndModRef`, the module type
    // passed here, exactly as `#[export_root_module]` would arrange it.
    unsafe {
        abi_stable::library::LibHeader::from_constructor::<LndModRef>(
            ctor,
            abi_stable::library::CheckTypeLayout::Yes,
        )
    }
}

/// Exports an LND plugin's root module. Use it once, at the crate root of a
/// `cdylib` that depends on `lnd-api` alone:
///
/// ```no_run
/// use lnd_api::{HostHandle, Lnd, LndError, NiConfig, NiStarted};
///
/// struct MyLnd;
///
/// impl Lnd for MyLnd {
///     fn startup(&self, cfg: NiConfig, host: HostHandle) -> Result<NiStarted, LndError> {
///         let _ = (cfg, host);
///         Err(LndError::unsupported("this example"))
///     }
/// }
///
/// fn my_lnd_constructor(net_type: &str) -> Result<MyLnd, LndError> {
///     let _ = net_type;
///     Ok(MyLnd)
/// }
///
/// lnd_api::export_lnd_plugin! {
///     name: "vendor-lnd",
///     version: "0.1.0",
///     net_types: [("vnd", 200)],
///     new_lnd: my_lnd_constructor,
/// }
/// # fn main() {}
/// ```
///
/// An optional `params: &'static [ParamDecl]` declares the plugin's module
/// parameters, and an optional `set_params: fn(&[Tunable]) -> Result<(),
/// LndError>` (only with `params`) receives the values given for them once at
/// load (see [`crate::params`]); the macro offers them as the extension
/// [`crate::params::PARAMS`] (lnd-api 1.2). An optional `extensions: fn(&str)
/// -> Option<Extension>` offers further extensions. The macro itself offers
/// [`SPAN_IO`] (lnd-api 1.1), through which a host that knows it makes LND
/// objects whose NIs take [`crate::PayloadSpan`]s. An optional
/// `get_sink_min: u32` (right after `new_lnd`) offers [`GET_SINK`]
/// (lnd-api 1.3): the plugin's NIs take, with a GET whose sink is at least
/// that long, the sink MD as `send_span`'s payload (see [`crate::lnd`]).
///
/// ```no_run
/// # use lnd_api::{HostHandle, Lnd, LndError, NiConfig, NiStarted, ParamDecl, Tunable};
/// # struct MyLnd;
/// # impl Lnd for MyLnd {
/// #     fn startup(&self, _: NiConfig, _: HostHandle) -> Result<NiStarted, LndError> {
/// #         Err(LndError::unsupported("this example"))
/// #     }
/// # }
/// # fn my_lnd_constructor(_: &str) -> Result<MyLnd, LndError> { Ok(MyLnd) }
/// static PARAMS: [ParamDecl; 1] = [ParamDecl::int(
///     "kvndlnd", "timeout", "50", 1, 86400, "LND timeout in seconds",
/// )];
///
/// fn set_params(values: &[Tunable]) -> Result<(), LndError> {
///     let _ = values; // e.g. keep them for the NIs to come
///     Ok(())
/// }
///
/// lnd_api::export_lnd_plugin! {
///     name: "vendor-lnd",
///     version: "0.1.0",
///     net_types: [("vnd", 200)],
///     new_lnd: my_lnd_constructor,
///     params: &PARAMS,
///     set_params: set_params,
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_lnd_plugin {
    (
        name: $name:expr,
        version: $version:expr,
        net_types: [$(($tname:expr, $ttype:expr)),* $(,)?],
        new_lnd: $ctor:path
        $(, get_sink_min: $gsm:expr)?
        $(, params: $params:expr $(, set_params: $set:expr)?)?
        $(, extensions: $ext:path)?
        $(,)?
    ) => {
        const _: () = {
            use $crate::abi_stable::prefix_type::PrefixTypeTrait as _;
            use $crate::abi_stable::std_types::{ROption, RResult, RSlice, RStr};

            static __LND_API_NET_TYPES: &[$crate::NetTypeDesc] = &[
                $($crate::NetTypeDesc { name: RStr::from_str($tname), lnd_type: $ttype },)*
            ];

            extern "C" fn __lnd_api_new_lnd(t: RStr<'_>) -> RResult<$crate::LndFfiBox, $crate::LndError> {
                $crate::module::new_lnd_shim(t, $ctor)
            }

            extern "C" fn __lnd_api_new_lnd_span(
                t: RStr<'_>,
            ) -> RResult<$crate::lnd::LndSpanFfiBox, $crate::LndError> {
                $crate::module::new_lnd_span_shim(t, $ctor)
            }

            static __LND_API_SPAN_IO: $crate::lnd::SpanIo = $crate::lnd::SpanIo {
                new_lnd: __lnd_api_new_lnd_span,
            };

            static __LND_API_PARAM_DECLS: &[$crate::params::ParamDecl] =
                $crate::__lnd_api_or!($($params)? ; &[]);

            extern "C" fn __lnd_api_set_params(
                v: RSlice<'_, $crate::Tunable>,
            ) -> RResult<(), $crate::LndError> {
                $crate::params::set_params_shim(
                    v,
                    $crate::__lnd_api_or!($($($set)?)? ; $crate::params::ignore_params),
                )
            }

            static __LND_API_PARAMS: $crate::params::LndParams = $crate::params::LndParams {
                decls: RSlice::from_slice(__LND_API_PARAM_DECLS),
                set_params: __lnd_api_set_params,
            };

            static __LND_API_GET_SINK: Option<$crate::lnd::GetSink> =
                $crate::__lnd_api_or!($(Some($crate::lnd::GetSink { min_len: $gsm }))? ; None);

            extern "C" fn __lnd_api_get_extension(n: RStr<'_>) -> ROption<$crate::module::Extension> {
                let found = $crate::module::span_io_extension(n.as_str(), &__LND_API_SPAN_IO)
                    .or_else(|| $crate::module::params_extension(n.as_str(), &__LND_API_PARAMS))
                    .or_else(|| $crate::module::get_sink_extension(n.as_str(), &__LND_API_GET_SINK));
                $(let found = found.or_else(|| match std::panic::catch_unwind(|| $ext(n.as_str())) {
                    Ok(v) => v,
                    Err(_) => None,
                });)?
                found.into()
            }

            fn __lnd_api_root() -> $crate::module::LndModRef {
                $crate::module::LndMod {
                    name: RStr::from_str($name),
                    version: RStr::from_str($version),
                    abi_version: RStr::from_str($crate::ABI_VERSION),
                    net_types: RSlice::from_slice(__LND_API_NET_TYPES),
                    new_lnd: __lnd_api_new_lnd,
                    get_extension: __lnd_api_get_extension,
                }
                .leak_into_prefix()
            }

            extern "C" fn __lnd_api_erased_root() -> $crate::abi_stable::library::RootModuleResult {
                $crate::abi_stable::library::__call_root_module_loader(__lnd_api_root)
            }

            // The symbol name abi_stable's loader looks for
            // (`abi_stable::library::ROOT_MODULE_LOADER_NAME`, checked by a test).
            #[unsafe(no_mangle)]
            #[allow(non_upper_case_globals)]
            pub static _1as_0lib_1header_0root_bmodule_bloader:
                $crate::abi_stable::library::LibHeader = $crate::module::lib_header(__lnd_api_erased_root);
        };
    };
}

/// A plugin whose header, version and layout were checked; its code stays
/// mapped for the life of the process.
#[derive(Clone, Copy)]
pub struct LoadedPlugin {
    /// The root module.
    pub module: LndModRef,
}

impl LoadedPlugin {
    /// The plugin's name.
    pub fn name(&self) -> &'static str {
        self.module.name().as_str()
    }
    /// The plugin's own version.
    pub fn version(&self) -> &'static str {
        self.module.version().as_str()
    }
    /// The lnd-api version it was built against.
    pub fn abi_version(&self) -> &'static str {
        self.module.abi_version().as_str()
    }
    /// The network types it provides.
    pub fn net_types(&self) -> &'static [NetTypeDesc] {
        self.module.net_types().as_slice()
    }
    /// Whether the plugin offers the lnd-api 1.1 span interface
    /// ([`SPAN_IO`], with the layout this host expects).
    pub fn offers_spans(&self) -> bool {
        extension::<SpanIo>(self.module, SPAN_IO).is_ok()
    }

    /// [`GET_SINK`] (lnd-api 1.3): the smallest GET sink the plugin's NIs
    /// take as `send_span`'s payload; `None` for a plugin without it (built
    /// against lnd-api 1.0 to 1.2, or not asking), or offering it with
    /// another layout (then GETs go without their sink, as to any LND).
    pub fn get_sink_min(&self) -> Option<u32> {
        extension::<GetSink>(self.module, GET_SINK)
            .ok()
            .map(|g| g.min_len)
    }

    /// The parameters the plugin declares ([`PARAMS`]); none for a plugin
    /// built against lnd-api 1.0 or 1.1. An error when it offers the
    /// extension with another layout than this host's (a modified copy of
    /// lnd-api).
    pub fn param_decls(&self) -> Result<&'static [ParamDecl], String> {
        match extension::<LndParams>(self.module, PARAMS) {
            Ok(p) => Ok(p.decls.as_slice()),
            Err(ExtensionError::Missing) => Ok(&[]),
            Err(ExtensionError::Layout(e)) => Err(format!(
                "plugin {} offers the parameter extension {PARAMS} with another layout than this \
                 LNet's lnd-api {ABI_VERSION}; rebuild it against this lnd-api ({e})",
                self.name()
            )),
        }
    }

    /// Hands the plugin the values given for its parameters (checked against
    /// [`LoadedPlugin::param_decls`] by the caller), once, before any LND
    /// object is made. A plugin without parameters takes an empty list.
    pub fn set_params(&self, values: &[Tunable]) -> Result<(), LndError> {
        match extension::<LndParams>(self.module, PARAMS) {
            Ok(p) => (p.set_params)(values.into()).into_result(),
            Err(_) if values.is_empty() => Ok(()),
            Err(_) => Err(LndError::new(
                crate::errno::EINVAL,
                format!(
                    "plugin {} declares no parameters, but {} were given",
                    self.name(),
                    values.len()
                ),
            )),
        }
    }

    /// Makes the LND object of one of its network types: through
    /// [`SPAN_IO`] when the plugin offers it, else the lnd-api 1.0 way.
    pub fn new_lnd(&self, net_type: &str) -> Result<LndHandle, LndError> {
        match extension::<SpanIo>(self.module, SPAN_IO) {
            Ok(span) => (span.new_lnd)(net_type.into())
                .into_result()
                .map(|l| LndHandle(LndObj::Span(l), self.get_sink_min())),
            // A 1.0 plugin, or one whose copy of the 1.1 types differs: the
            // 1.0 objects, checked when the plugin was loaded.
            Err(_) => (self.module.new_lnd())(net_type.into())
                .into_result()
                .map(|l| LndHandle(LndObj::V10(l), None)),
        }
    }
}

impl fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name())
            .field("version", &self.version())
            .field("abi_version", &self.abi_version())
            .finish()
    }
}

/// Why a plugin was refused; every message names the file and what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// No such file.
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read or is not an ELF shared object.
    NotSharedObject {
        /// The file.
        path: PathBuf,
        /// What the loader said.
        detail: String,
    },
    /// A shared object without an lnd-api root module.
    NotPlugin {
        /// The file.
        path: PathBuf,
        /// What the loader said.
        detail: String,
    },
    /// Built against an incompatible lnd-api or abi_stable.
    AbiMismatch {
        /// The file.
        path: PathBuf,
        /// What the plugin was built against (`lnd-api 2.0.0`).
        plugin: String,
        /// What this host was built with.
        host: String,
        /// The checker's `Error:` lines.
        errors: Vec<String>,
        /// The checker's whole report, for the debug log.
        report: String,
    },
    /// The plugin's root module failed to initialise.
    Init {
        /// The file.
        path: PathBuf,
        /// What it said.
        detail: String,
    },
}

impl LoadError {
    /// The file concerned.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::NotFound { path }
            | LoadError::NotSharedObject { path, .. }
            | LoadError::NotPlugin { path, .. }
            | LoadError::AbiMismatch { path, .. }
            | LoadError::Init { path, .. } => path,
        }
    }

    /// The errno a control client sees.
    pub fn errno(&self) -> i32 {
        match self {
            LoadError::NotFound { .. } => crate::errno::ENOENT,
            LoadError::NotSharedObject { .. } | LoadError::NotPlugin { .. } => crate::errno::EINVAL,
            LoadError::AbiMismatch { .. } => crate::errno::EPROTO,
            LoadError::Init { .. } => crate::errno::EIO,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::NotFound { path } => write!(
                f,
                "cannot load plugin {}: no such file; check the path, or build the plugin \
                 (cargo build) and give the path of its .so",
                path.display()
            ),
            LoadError::NotSharedObject { path, detail } => write!(
                f,
                "cannot load plugin {}: not a shared object ({detail}); give the path of the \
                 plugin's .so file (a cdylib), not of a source file or an rlib",
                path.display()
            ),
            LoadError::NotPlugin { path, detail } => write!(
                f,
                "cannot load plugin {}: this shared object is not an LND plugin (no lnd-api root \
                 module: {detail}); an LND plugin exports one with lnd_api::export_lnd_plugin!",
                path.display()
            ),
            LoadError::AbiMismatch {
                path,
                plugin,
                host,
                errors,
                ..
            } => {
                if plugin == host {
                    write!(
                        f,
                        "cannot load plugin {}: it was built against {plugin}, but its interface \
                         types differ from this LNet's {host} (a modified or mismatched copy of \
                         lnd-api)",
                        path.display()
                    )?;
                } else {
                    write!(
                        f,
                        "cannot load plugin {}: it was built against {plugin}, but this LNet uses \
                         {host}",
                        path.display()
                    )?;
                }
                write!(
                    f,
                    "; rebuild the plugin against lnd-api {ABI_VERSION} (the interface crate of \
                     this LNet) and load the new .so"
                )?;
                for e in errors {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
            LoadError::Init { path, detail } => write!(
                f,
                "cannot load plugin {}: its root module failed to initialise: {detail}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// The `Error:` lines of abi_stable's layout report, each with where the
/// mismatch is (`NiInfo.timeout_secs`) and both sides; the rest of the report
/// is hundreds of lines of type dumps.
fn error_lines(report: &str) -> Vec<String> {
    let lines: Vec<&str> = report.lines().collect();
    let mut out: Vec<String> = Vec::new();
    // The path of the last "N error(s)inside:" block (N > 0) leads to the error.
    let mut path: Vec<(String, String)> = Vec::new();
    let mut in_block = false;
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim();
        if let Some(n) = l.strip_suffix("error(s)inside:") {
            in_block = n.trim().parse::<u32>().is_ok_and(|n| n > 0);
            path.clear();
        } else if in_block && l.starts_with("field_name:") {
            let field = l.trim_start_matches("field_name:").to_string();
            let ty = lines
                .get(i + 1)
                .map(|t| t.trim().trim_start_matches("type:").to_string())
                .unwrap_or_default();
            path.push((field, ty));
        } else if l.starts_with("Layout of expected type") {
            in_block = false;
        } else if let Some(kind) = l.strip_prefix("Error:") {
            let value = |label: &str| {
                lines[i..]
                    .iter()
                    .position(|x| x.trim() == label)
                    .and_then(|k| lines.get(i + k + 1))
                    .map(|v| v.trim().to_string())
            };
            let meaningful: Vec<&(String, String)> = path
                .iter()
                .filter(|(f, _)| {
                    !matches!(f.as_str(), "0" | "field_0" | "__returns" | "obj" | "vtable")
                })
                .collect();
            let mut msg = format!("Error: {}", kind.trim());
            if let Some(k) = path
                .iter()
                .rposition(|(f, _)| !matches!(f.as_str(), "0" | "field_0" | "__returns"))
            {
                let owner = if k > 0 { path[k - 1].1.as_str() } else { "" };
                msg.push_str(&format!(" at {owner}.{}", path[k].0));
                if let Some((first, _)) = meaningful.first() {
                    if first != &path[k].0 {
                        msg.push_str(&format!(" (reached through the root module's {first})"));
                    }
                }
            }
            if let (Some(e), Some(f)) = (value("Expected:"), value("Found:")) {
                msg.push_str(&format!(": this LNet has {e}, the plugin has {f}"));
            }
            if !out.contains(&msg) {
                out.push(msg);
            }
            path.clear();
            in_block = false;
        }
        i += 1;
    }
    out.truncate(8);
    out
}

/// Loads a plugin from a file: checks it is an ELF shared object, finds the
/// root module, checks the lnd-api version and the layout of every type it
/// uses, then initialises it. Nothing of the plugin runs before the checks.
pub fn load_plugin(path: &Path) -> Result<LoadedPlugin, LoadError> {
    let p = path.to_path_buf();
    let mut magic = [0u8; 4];
    match std::fs::File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LoadError::NotFound { path: p })
        }
        Err(e) => {
            return Err(LoadError::NotSharedObject {
                path: p,
                detail: e.to_string(),
            })
        }
        Ok(mut f) => {
            if f.read_exact(&mut magic).is_err() || magic != *b"\x7fELF" {
                return Err(LoadError::NotSharedObject {
                    path: p,
                    detail: "no ELF header".to_string(),
                });
            }
        }
    }
    let header = lib_header_from_path(path).map_err(|e| match e {
        LibraryError::OpenError { err, .. } => LoadError::NotSharedObject {
            path: p.clone(),
            detail: err.to_string(),
        },
        LibraryError::GetSymbolError { .. } => LoadError::NotPlugin {
            path: p.clone(),
            detail: "symbol of the abi_stable library header not found".to_string(),
        },
        LibraryError::InvalidAbiHeader(h) => {
            let ours = abi_stable::library::AbiHeader::VALUE;
            if h.magic_string != ours.magic_string {
                return LoadError::NotPlugin {
                    path: p.clone(),
                    detail: "its library header is not abi_stable's".to_string(),
                };
            }
            LoadError::AbiMismatch {
                path: p.clone(),
                plugin: format!("abi_stable ABI {}.{}", h.abi_major, h.abi_minor),
                host: format!(
                    "lnd-api {ABI_VERSION} with abi_stable {ABI_STABLE_VERSION} (abi_stable ABI {}.{})",
                    ours.abi_major, ours.abi_minor
                ),
                errors: vec![format!(
                    "Error: abi_stable ABI {}.{} is not compatible with {}.{}",
                    h.abi_major, h.abi_minor, ours.abi_major, ours.abi_minor
                )],
                report: String::new(),
            }
        }
        other => LoadError::NotPlugin {
            path: p.clone(),
            detail: other.to_string(),
        },
    })?;
    let plugin_ver = header.version_strings().version.to_string();
    let mismatch = |errors: Vec<String>, report: String| LoadError::AbiMismatch {
        path: p.clone(),
        plugin: format!("lnd-api {plugin_ver}"),
        host: format!("lnd-api {ABI_VERSION}"),
        errors,
        report,
    };
    let module = header
        .init_root_module::<LndModRef>()
        .map_err(|e| match e {
            LibraryError::IncompatibleVersionNumber {
                expected_version,
                actual_version,
                ..
            } => mismatch(
                vec![format!(
                "Error: lnd-api {actual_version} is not compatible with lnd-api {expected_version}"
            )],
                String::new(),
            ),
            LibraryError::ParseVersionError(v) => {
                mismatch(vec![format!("Error: {v}")], String::new())
            }
            LibraryError::AbiInstability(report) => {
                let text = report.to_string();
                let mut lines = error_lines(&text);
                if lines.is_empty() {
                    lines.push("Error: the layout of the plugin interface differs".to_string());
                }
                mismatch(lines, text)
            }
            other => LoadError::Init {
                path: p.clone(),
                detail: other.to_string(),
            },
        })?;
    Ok(LoadedPlugin { module })
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_macro_uses_abi_stables_symbol_name() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }

    #[test]
    fn error_lines_keeps_only_errors() {
        let r =
            "Layout mismatch\n   Error: field a: u8 vs u16\n  blah\n  Error: field a: u8 vs u16\n";
        assert_eq!(
            super::error_lines(r),
            vec!["Error: field a: u8 vs u16".to_string()]
        );
    }
}
