//! Numeric expression lists (`cfs_expr_list`): `[0-3/2,5]`.

use std::fmt;
use std::str::FromStr;

use super::{parse_uint_base0, NidError};

// ---------------------------------------------------------------------------
// Numeric expression lists
// ---------------------------------------------------------------------------

/// One element of a [`NumExprList`]: `lo`, `lo-hi` or `lo-hi/stride`
/// (`struct cfs_range_expr`). Invariant: `lo <= hi`, `stride >= 1`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RangeExpr {
    lo: u32,
    hi: u32,
    stride: u32,
}

impl RangeExpr {
    /// `lo-hi/stride`; `None` unless `lo <= hi` and `stride >= 1`.
    pub const fn new(lo: u32, hi: u32, stride: u32) -> Option<Self> {
        if lo > hi || stride == 0 {
            None
        } else if lo == hi {
            Some(RangeExpr::single(lo))
        } else {
            Some(RangeExpr { lo, hi, stride })
        }
    }

    /// The single value `v`.
    pub const fn single(v: u32) -> Self {
        RangeExpr {
            lo: v,
            hi: v,
            stride: 1,
        }
    }

    /// Lowest value.
    pub const fn lo(&self) -> u32 {
        self.lo
    }

    /// Highest bound (the highest value when `(hi - lo)` is a multiple of the stride).
    pub const fn hi(&self) -> u32 {
        self.hi
    }

    /// Step between values.
    pub const fn stride(&self) -> u32 {
        self.stride
    }

    /// Whether `v` is one of the values: `lo <= v <= hi` and `(v - lo) % stride == 0`.
    pub const fn matches(&self, v: u32) -> bool {
        v >= self.lo && v <= self.hi && (v - self.lo) % self.stride == 0
    }

    /// Highest value.
    pub const fn max(&self) -> u32 {
        self.hi - (self.hi - self.lo) % self.stride
    }

    /// Number of values.
    pub const fn count(&self) -> u64 {
        (self.hi - self.lo) as u64 / self.stride as u64 + 1
    }

    /// The values, ascending.
    pub fn values(&self) -> impl Iterator<Item = u32> + Clone {
        let (lo, stride) = (self.lo as u64, self.stride as u64);
        (0..self.count()).map(move |i| (lo + i * stride) as u32)
    }

    /// Writes the element; `bracketed` when inside a `[...]` list already.
    fn write(&self, f: &mut fmt::Formatter<'_>, bracketed: bool) -> fmt::Result {
        let (open, close) = if bracketed { ("", "") } else { ("[", "]") };
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else if self.stride == 1 {
            write!(f, "{open}{}-{}{close}", self.lo, self.hi)
        } else {
            write!(f, "{open}{}-{}/{}{close}", self.lo, self.hi, self.stride)
        }
    }
}

/// A numeric expression list (`struct cfs_expr_list`): `n`, `*`, or
/// `[e1,e2,...]` with each element `n`, `a-b`, `a-b/s` or `*` (semantics.md
/// §14.3). Used for the octets and numbers of NID ranges and for CPT lists.
///
/// Numbers are read as the kernel's `kstrtouint(.., 0, ..)` does (`0x` hex,
/// leading-`0` octal); `*` is the whole allowed range. Printed as
/// `cfs_expr_list_print()` does: one element without brackets unless it is a
/// range (`5`, `[1-4]`, `[0-7/2]`), several in brackets (`[1,3-5]`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct NumExprList {
    exprs: Vec<RangeExpr>,
}

impl NumExprList {
    /// The list of one element.
    pub fn from_expr(e: RangeExpr) -> Self {
        NumExprList { exprs: vec![e] }
    }

    /// A list of elements; `None` when `exprs` is empty.
    pub fn from_exprs(exprs: Vec<RangeExpr>) -> Option<Self> {
        (!exprs.is_empty()).then_some(NumExprList { exprs })
    }

    /// Parses a list whose values may be any u32.
    pub fn parse(s: &str) -> Result<Self, NidError> {
        Self::parse_bounded(s, 0, u32::MAX)
    }

    /// Parses a list whose values must lie in `min..=max` (`*` means all of it).
    pub fn parse_bounded(s: &str, min: u32, max: u32) -> Result<Self, NidError> {
        parse_expr_list(s, min, max, true).map_err(|reason| NidError::Expr {
            input: s.to_owned(),
            reason,
        })
    }

    /// Parses a CPT list (`--cpt`, `eth0[0,1]`, the `CPT` key of YAML):
    /// values must be below `ncpt`, the number of CPU partitions; `*` is all
    /// of them.
    pub fn parse_cpts(s: &str, ncpt: u32) -> Result<Self, NidError> {
        let err = |reason: String| NidError::Expr {
            input: s.to_owned(),
            reason,
        };
        if ncpt == 0 {
            return Err(err("there are no CPU partitions".to_owned()));
        }
        parse_expr_list(s, 0, ncpt - 1, true)
            .map_err(|r| err(format!("{r} (CPTs are numbered 0 to {})", ncpt - 1)))
    }

    /// Parses the inside of a bracketed list without its brackets, as CPU
    /// lists are written (`0,2,4-7/2` in `cpu_pattern`'s `0[...]`, a sysfs
    /// `cpulist`): values in `min..=max`, no `*` (the whole range is never
    /// meant there). `None` when `s` holds no element.
    pub fn parse_unbracketed(s: &str, min: u32, max: u32) -> Result<Option<Self>, NidError> {
        let err = |reason: String| NidError::Expr {
            input: s.to_owned(),
            reason,
        };
        if s.trim().is_empty() {
            return Ok(None);
        }
        let exprs = s
            .split(',')
            .map(|item| parse_range_expr(item.trim(), min, max, true, false))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(Some(NumExprList { exprs }))
    }

    /// The elements, in the order written.
    pub fn exprs(&self) -> &[RangeExpr] {
        &self.exprs
    }

    /// Whether `v` matches any element (`cfs_expr_list_match()`).
    pub fn matches(&self, v: u32) -> bool {
        self.exprs.iter().any(|e| e.matches(v))
    }

    /// Number of values, counting repeats (saturating).
    pub fn count(&self) -> u64 {
        self.exprs
            .iter()
            .fold(0u64, |n, e| n.saturating_add(e.count()))
    }

    /// Highest value of any element.
    pub fn max_value(&self) -> u32 {
        self.exprs.iter().map(RangeExpr::max).max().unwrap_or(0)
    }

    /// The values, element by element in the order written, each element
    /// ascending (`cfs_expr_list_values()`); repeats are kept.
    pub fn values(&self) -> impl Iterator<Item = u32> + Clone + '_ {
        self.exprs.iter().flat_map(|e| e.values())
    }

    /// Writes the list always in brackets (`[5]`, `[0-3]`, `[1,3]`), the form
    /// CPT lists take in `networks=`.
    pub fn fmt_bracketed(&self) -> impl fmt::Display + '_ {
        Bracketed(self)
    }
}

struct Bracketed<'a>(&'a NumExprList);

impl fmt::Display for Bracketed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, e) in self.0.exprs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            e.write(f, true)?;
        }
        f.write_str("]")
    }
}

impl fmt::Display for NumExprList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.exprs.as_slice() {
            [one] => one.write(f, false),
            _ => Bracketed(self).fmt(f),
        }
    }
}

impl FromStr for NumExprList {
    type Err = NidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NumExprList::parse(s)
    }
}

/// `cfs_expr_list_parse()`: `s` is `n`, `*` or `[e,...]`; with `allow_star`
/// false, `*` is refused (CPT lists, where the bound is not known yet).
pub(crate) fn parse_expr_list(
    s: &str,
    min: u32,
    max: u32,
    allow_star: bool,
) -> Result<NumExprList, String> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let mut exprs = Vec::new();
        for item in inner.split(',') {
            exprs.push(parse_range_expr(item.trim(), min, max, true, allow_star)?);
        }
        return Ok(NumExprList { exprs });
    }
    if s.starts_with('[') || s.ends_with(']') {
        return Err(format!("\"{s}\" has unbalanced brackets"));
    }
    Ok(NumExprList {
        exprs: vec![parse_range_expr(s, min, max, false, allow_star)?],
    })
}

/// `cfs_range_expr_parse()`.
fn parse_range_expr(
    s: &str,
    min: u32,
    max: u32,
    bracketed: bool,
    allow_star: bool,
) -> Result<RangeExpr, String> {
    let num = |t: &str| -> Result<u32, String> {
        let t = t.trim();
        let v = parse_uint_base0(t).ok_or_else(|| {
            if t.is_empty() {
                format!("element \"{s}\" is missing a number")
            } else {
                format!("\"{t}\" in \"{s}\" is not a number")
            }
        })?;
        if v < min || v > max {
            return Err(format!("{v} in \"{s}\" is out of range {min}..{max}"));
        }
        Ok(v)
    };
    if s.is_empty() {
        return Err("empty element (write numbers between the commas)".to_owned());
    }
    if s == "*" {
        if !allow_star {
            return Err("\"*\" is not allowed here; write the values, e.g. [0-3]".to_owned());
        }
        return Ok(RangeExpr {
            lo: min,
            hi: max,
            stride: 1,
        });
    }
    if let Some(v) = parse_uint_base0(s) {
        if v < min || v > max {
            return Err(format!("{v} is out of range {min}..{max}"));
        }
        return Ok(RangeExpr::single(v));
    }
    if !bracketed {
        return Err(format!(
            "\"{s}\" is not a number; ranges go in brackets, e.g. [1-4] or [0-6/2]"
        ));
    }
    let Some((lo, rest)) = s.split_once('-') else {
        return Err(format!(
            "\"{s}\" is not a number or a range a-b or a-b/step"
        ));
    };
    let lo = num(lo)?;
    let (hi, stride) = match rest.split_once('/') {
        Some((hi, st)) => {
            let st = st.trim();
            let stride = parse_uint_base0(st)
                .filter(|&v| v >= 1)
                .ok_or_else(|| format!("step \"{st}\" in \"{s}\" is not a number of at least 1"))?;
            (num(hi)?, stride)
        }
        None => (num(rest)?, 1),
    };
    RangeExpr::new(lo, hi, stride)
        .ok_or_else(|| format!("range \"{s}\" is in the wrong order ({lo} > {hi})"))
}
