//! Module parameters a plugin declares (lnd-api 1.2, the extension
//! [`PARAMS`]).
//!
//! Upstream, every LND is a kernel module with its own parameters
//! (`options ksocklnd sock_timeout=65`). A plugin declares its own the same
//! way: a table of [`ParamDecl`]s (module name, parameter name, type,
//! default, range or choices, one line of help), offered through
//! `export_lnd_plugin! { ..., params: TABLE, set_params: FN }`. The host
//! reads the table before it starts anything of the plugin, checks every
//! value the administrator gave against it ([`ParamDecl::check`]: an unknown
//! name or a bad value stops the start with a message naming it), and hands
//! the checked values over:
//!
//! * once, right after the plugin is loaded and before any LND object is
//!   made, to the plugin's `set_params` function: the values given for its
//!   own parameters, as [`Tunable`]s in canonical form (integers in decimal,
//!   booleans `0`/`1`);
//! * then at every NI start-up in [`crate::NiConfig::params`], together with
//!   the lnet module parameters the node was started with
//!   (`lnet_transaction_timeout`, `accept_port`, ...).
//!
//! Parameters not given keep their declared default, which the plugin applies
//! itself (the host passes only what was given). A plugin without the
//! extension (built against lnd-api 1.0 or 1.1) declares no parameters: the
//! host refuses any value meant for it.

use std::fmt;

use abi_stable::std_types::{RResult, RSlice, RStr};
use abi_stable::StableAbi;

use crate::types::{LndError, Tunable};

/// The name of the parameter extension: a [`LndParams`] value.
pub const PARAMS: &str = "lnd-api.params.v1";

/// The type of a parameter's value.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Debug)]
pub struct ParamType(pub u8);

impl ParamType {
    /// An integer between [`ParamDecl::min`] and [`ParamDecl::max`], written
    /// as C's `strtol(s, 0)` reads it (`988`, `0x3dc`, `-1`).
    pub const INT: ParamType = ParamType(1);
    /// `0` or `1` (also `n`/`y`, `N`/`Y`, as the kernel reads a bool).
    pub const BOOL: ParamType = ParamType(2);
    /// Any text.
    pub const STRING: ParamType = ParamType(3);
    /// One of [`ParamDecl::choices`].
    pub const CHOICE: ParamType = ParamType(4);

    /// The type's name, as `lnetd --help-params` and messages print it.
    pub const fn name(self) -> &'static str {
        match self.0 {
            1 => "int",
            2 => "bool",
            3 => "string",
            4 => "choice",
            _ => "unknown",
        }
    }
}

/// One parameter a plugin declares.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct ParamDecl {
    /// The module it belongs to, as `options MODULE ...` names it
    /// (`ksocklnd`, `ko2iblnd`).
    pub module: RStr<'static>,
    /// The parameter's name (`sock_timeout`).
    pub name: RStr<'static>,
    /// Its type.
    pub ty: ParamType,
    /// Its default, as text (`50`).
    pub default: RStr<'static>,
    /// Smallest value of an [`ParamType::INT`].
    pub min: i64,
    /// Largest value of an [`ParamType::INT`].
    pub max: i64,
    /// The values of a [`ParamType::CHOICE`].
    pub choices: RSlice<'static, RStr<'static>>,
    /// One line of help (`dead-socket timeout in seconds; 0 follows lnd_timeout`).
    pub help: RStr<'static>,
}

impl ParamDecl {
    /// An integer parameter in `min..=max`.
    pub const fn int(
        module: &'static str,
        name: &'static str,
        default: &'static str,
        min: i64,
        max: i64,
        help: &'static str,
    ) -> Self {
        ParamDecl {
            module: RStr::from_str(module),
            name: RStr::from_str(name),
            ty: ParamType::INT,
            default: RStr::from_str(default),
            min,
            max,
            choices: RSlice::from_slice(&[]),
            help: RStr::from_str(help),
        }
    }

    /// A boolean parameter (`default` is `"0"` or `"1"`).
    pub const fn bool(
        module: &'static str,
        name: &'static str,
        default: &'static str,
        help: &'static str,
    ) -> Self {
        ParamDecl {
            ty: ParamType::BOOL,
            min: 0,
            max: 1,
            ..ParamDecl::int(module, name, default, 0, 1, help)
        }
    }

    /// A text parameter.
    pub const fn string(
        module: &'static str,
        name: &'static str,
        default: &'static str,
        help: &'static str,
    ) -> Self {
        ParamDecl {
            ty: ParamType::STRING,
            min: 0,
            max: 0,
            ..ParamDecl::int(module, name, default, 0, 0, help)
        }
    }

    /// A parameter that takes one of `choices`.
    pub const fn choice(
        module: &'static str,
        name: &'static str,
        default: &'static str,
        choices: &'static [RStr<'static>],
        help: &'static str,
    ) -> Self {
        ParamDecl {
            ty: ParamType::CHOICE,
            min: 0,
            max: 0,
            choices: RSlice::from_slice(choices),
            ..ParamDecl::int(module, name, default, 0, 0, help)
        }
    }

    /// The module.
    pub fn module(&self) -> &'static str {
        self.module.as_str()
    }

    /// The name.
    pub fn name(&self) -> &'static str {
        self.name.as_str()
    }

    /// The default.
    pub fn default(&self) -> &'static str {
        self.default.as_str()
    }

    /// The help line.
    pub fn help(&self) -> &'static str {
        self.help.as_str()
    }

    /// What values it takes, for help and messages (`integer in 0..65535`).
    pub fn values_text(&self) -> String {
        match self.ty {
            ParamType::INT if self.max >= i64::from(i32::MAX) => {
                format!("an integer >= {}", self.min)
            }
            ParamType::INT => format!("an integer in {}..{}", self.min, self.max),
            ParamType::BOOL => "0 or 1".to_string(),
            ParamType::CHOICE => {
                let words: Vec<&str> = self
                    .choices
                    .iter()
                    .map(|c| if c.is_empty() { "\"\"" } else { c.as_str() })
                    .collect();
                format!("one of {}", words.join(", "))
            }
            _ => "text".to_string(),
        }
    }

    /// Checks a value; returns it in canonical form (integers in decimal,
    /// booleans `0`/`1`, text as given), or why it is refused.
    pub fn check(&self, value: &str) -> Result<String, ParamError> {
        let bad = |why: String| ParamError {
            module: self.module().to_string(),
            name: self.name().to_string(),
            value: value.to_string(),
            why,
        };
        match self.ty {
            ParamType::INT => match strtol(value) {
                Some(v) if v >= self.min && v <= self.max => Ok(v.to_string()),
                Some(_) => Err(bad(format!("out of range: {}", self.values_text()))),
                None => Err(bad(format!("not an integer: {}", self.values_text()))),
            },
            ParamType::BOOL => match value.trim() {
                "1" | "y" | "Y" => Ok("1".to_string()),
                "0" | "n" | "N" => Ok("0".to_string()),
                _ => Err(bad("expected 0 or 1".to_string())),
            },
            ParamType::CHOICE => {
                if self.choices.iter().any(|c| c.as_str() == value) {
                    Ok(value.to_string())
                } else {
                    Err(bad(format!("expected {}", self.values_text())))
                }
            }
            ParamType::STRING => Ok(value.to_string()),
            ParamType(t) => Err(bad(format!(
                "the plugin declares it with type {t}, which this LNet does not know; \
                 rebuild the plugin against this lnd-api"
            ))),
        }
    }
}

/// C `strtol(s, NULL, 0)` over the whole (trimmed) string: decimal, `0x`
/// hex, leading-`0` octal, an optional sign.
pub fn strtol(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) =
        if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, h)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

/// A value refused by [`ParamDecl::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamError {
    /// The module.
    pub module: String,
    /// The parameter.
    pub name: String,
    /// The value given.
    pub value: String,
    /// Why.
    pub why: String,
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad value for parameter {} of {}: {:?} is {}",
            self.name, self.module, self.value, self.why
        )
    }
}

impl std::error::Error for ParamError {}

/// The extension [`PARAMS`]: the declarations, and where the host hands the
/// checked values at load.
#[repr(C)]
#[derive(StableAbi)]
pub struct LndParams {
    /// Every parameter of the plugin.
    pub decls: RSlice<'static, ParamDecl>,
    /// Called once after load, before any LND object is made, with the
    /// values given for the plugin's parameters (checked, canonical). An
    /// error refuses the load with the plugin's message.
    pub set_params: extern "C" fn(values: RSlice<'_, Tunable>) -> RResult<(), LndError>,
}

/// Used by [`crate::export_lnd_plugin!`]: calls the plugin's `set_params`
/// inside `catch_unwind`.
#[doc(hidden)]
pub fn set_params_shim(
    values: RSlice<'_, Tunable>,
    f: fn(&[Tunable]) -> Result<(), LndError>,
) -> RResult<(), LndError> {
    match std::panic::catch_unwind(|| f(values.as_slice())) {
        Ok(r) => r.into(),
        Err(p) => RResult::RErr(LndError::panicked("plugin set_params", &*p)),
    }
}

/// Used by [`crate::export_lnd_plugin!`] when the plugin gives no
/// `set_params`: it reads its values from [`crate::NiConfig::params`].
#[doc(hidden)]
pub fn ignore_params(_values: &[Tunable]) -> Result<(), LndError> {
    Ok(())
}

/// Looks a parameter up in a list of declarations.
pub fn find<'a>(decls: &'a [ParamDecl], module: &str, name: &str) -> Option<&'a ParamDecl> {
    decls
        .iter()
        .find(|d| d.module() == module && d.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    static CHOICES: [RStr<'static>; 3] = [
        RStr::from_str("secure"),
        RStr::from_str("all"),
        RStr::from_str("none"),
    ];

    #[test]
    fn checks_and_canonical_forms() {
        let d = ParamDecl::int("ksocklnd", "sock_timeout", "50", 0, 86400, "h");
        assert_eq!(d.check("0x10").as_deref(), Ok("16"));
        assert_eq!(d.check(" 65 ").as_deref(), Ok("65"));
        let e = d.check("86401").expect_err("range");
        assert_eq!(
            e.to_string(),
            "bad value for parameter sock_timeout of ksocklnd: \"86401\" is out of range: an \
             integer in 0..86400"
        );
        assert!(d.check("ten").is_err());
        assert!(d.check("").is_err());
        let b = ParamDecl::bool("ksocklnd", "nagle", "0", "h");
        assert_eq!(b.check("Y").as_deref(), Ok("1"));
        assert_eq!(b.check("0").as_deref(), Ok("0"));
        assert!(b.check("2").is_err());
        let c = ParamDecl::choice("lnet", "accept", "secure", &CHOICES, "h");
        assert_eq!(c.check("all").as_deref(), Ok("all"));
        let e = c.check("maybe").expect_err("choice");
        assert!(e.why.contains("secure, all, none"), "{e}");
        let s = ParamDecl::string("ko2iblnd", "ipif_name", "ib0", "h");
        assert_eq!(s.check("ib1").as_deref(), Ok("ib1"));
        let mut u = s;
        u.ty = ParamType(9);
        assert!(u.check("x").is_err());
    }

    #[test]
    fn strtol_like_c() {
        assert_eq!(strtol("0x3dc"), Some(988));
        assert_eq!(strtol("010"), Some(8));
        assert_eq!(strtol("-1"), Some(-1));
        assert_eq!(strtol("0"), Some(0));
        assert_eq!(strtol("08"), None);
        assert_eq!(strtol("1k"), None);
        assert_eq!(strtol("-"), None);
    }

    #[test]
    fn wide_ranges_read_as_lower_bounds() {
        let d = ParamDecl::int("m", "n", "1", 1, i64::from(i32::MAX), "h");
        assert_eq!(d.values_text(), "an integer >= 1");
        assert_eq!(find(&[d], "m", "n").map(|d| d.name()), Some("n"));
        assert!(find(&[d], "other", "n").is_none());
    }
}
