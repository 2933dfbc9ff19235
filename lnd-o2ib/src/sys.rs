//! rdma-core opened at run time: the only module of this crate with
//! `unsafe` code.
//!
//! `libibverbs.so.1` and `librdmacm.so.1` are opened with libloading (as
//! NCCL does), so the plugin builds and loads on every host; what the host
//! lacks is reported by name. This module holds the hand-written bindings
//! of the few entry points used so far (written from rdma-core's
//! `infiniband/verbs.h` and `rdma/rdma_cma.h`; only opaque pointers and
//! `struct sockaddr_in` cross, whose layout is asserted in the tests) and
//! the probe that decides whether an interface is an RDMA port:
//! `ibv_get_device_list` for devices, then `rdma_bind_addr` of an rdma_cm
//! id to the interface's address, which succeeds only when an RDMA device
//! owns that address (as o2iblnd's `kiblnd_dev_failover()` binds its
//! listener).

use std::ffi::{c_int, CStr};
use std::net::Ipv4Addr;

use libloading::{Library, Symbol};

/// The verbs library's file name.
pub const LIBIBVERBS: &str = "libibverbs.so.1";
/// The RDMA CM library's file name.
pub const LIBRDMACM: &str = "librdmacm.so.1";

pub mod ffi;
pub mod rdma;
pub mod sock;

use ffi::{
    IbvFreeDeviceList, IbvGetDeviceList, IbvGetDeviceName, RdmaBindAddr, RdmaCreateEventChannel,
    RdmaCreateId, RdmaDestroyEventChannel, RdmaDestroyId, SockaddrIn, AF_INET, RDMA_PS_TCP,
};

/// Why the rdma provider cannot serve an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// A library is missing (rdma-core not installed).
    NoLibrary {
        /// Its file name.
        lib: &'static str,
        /// The loader's message.
        why: String,
    },
    /// A library lacks an entry point (too old).
    NoSymbol {
        /// The symbol.
        sym: &'static str,
    },
    /// No RDMA device.
    NoDevice,
    /// The address is not on an RDMA port.
    NotRdmaPort {
        /// The address.
        addr: Ipv4Addr,
        /// What `rdma_bind_addr` said.
        why: String,
    },
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::NoLibrary { lib, why } => write!(
                f,
                "rdma-core is not installed ({lib}: {why}); install rdma-core and ibverbs-providers, or use provider=soft"
            ),
            ProbeError::NoSymbol { sym } => {
                write!(f, "rdma-core is too old: {sym} is missing")
            }
            ProbeError::NoDevice => f.write_str(
                "no RDMA device (ibv_get_device_list found none; check \"ibv_devices\"), or use provider=soft",
            ),
            ProbeError::NotRdmaPort { addr, why } => write!(
                f,
                "{addr} is not the address of an RDMA port (rdma_bind_addr: {why}); check \"rdma link\""
            ),
        }
    }
}

fn open(lib: &'static str) -> Result<Library, ProbeError> {
    // SAFETY: opening rdma-core runs its initialisers, which only set up
    // the library's own state; these are the system's verbs libraries,
    // named explicitly (never a path from input).
    unsafe { Library::new(lib) }.map_err(|e| ProbeError::NoLibrary {
        lib,
        why: e.to_string(),
    })
}

fn sym<'l, T>(l: &'l Library, name: &'static str) -> Result<Symbol<'l, T>, ProbeError> {
    let mut n = name.as_bytes().to_vec();
    n.push(0);
    // SAFETY: each call site names `T` as the C prototype of `name` in
    // rdma-core's headers (the type aliases above).
    unsafe { l.get::<T>(&n) }.map_err(|_| ProbeError::NoSymbol { sym: name })
}

/// The names of the RDMA devices (`ibv_devices`).
pub fn devices() -> Result<Vec<String>, ProbeError> {
    let verbs = open(LIBIBVERBS)?;
    let get: Symbol<IbvGetDeviceList> = sym(&verbs, "ibv_get_device_list")?;
    let free: Symbol<IbvFreeDeviceList> = sym(&verbs, "ibv_free_device_list")?;
    let name: Symbol<IbvGetDeviceName> = sym(&verbs, "ibv_get_device_name")?;
    let mut n: c_int = 0;
    // SAFETY: `n` is a valid out-pointer; the list is freed below.
    let list = unsafe { get(&mut n) };
    if list.is_null() {
        return Err(ProbeError::NoDevice);
    }
    let mut out = Vec::new();
    for i in 0..n.max(0) as usize {
        // SAFETY: the list holds `n` device pointers (then a NULL).
        let dev = unsafe { *list.add(i) };
        if dev.is_null() {
            break;
        }
        // SAFETY: `dev` comes from the list; the name is a C string owned
        // by the device, copied before the list is freed.
        let s = unsafe { name(dev) };
        if !s.is_null() {
            // SAFETY: non-null, NUL-terminated (rdma-core's contract).
            out.push(unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned());
        }
    }
    // SAFETY: `list` came from ibv_get_device_list and is freed once.
    unsafe { free(list) };
    if out.is_empty() {
        return Err(ProbeError::NoDevice);
    }
    Ok(out)
}

/// The C library `getifaddrs` comes from.
const LIBC: &str = "libc.so.6";

/// The IPv4 address of interface `name` (`ib0`, `eth1`; the first one it
/// has), from `getifaddrs(3)`: `Ok(None)` when there is no such interface
/// or it has no IPv4 address; `Err` when the C library cannot be asked.
pub fn if_ipv4(name: &str) -> Result<Option<Ipv4Addr>, String> {
    // SAFETY: opening the system C library, already loaded in the process.
    let libc = unsafe { Library::new(LIBC) }.map_err(|e| format!("{LIBC}: {e}"))?;
    let get: Symbol<ffi::Getifaddrs> =
        sym(&libc, "getifaddrs").map_err(|e| format!("{LIBC}: {e}"))?;
    let free: Symbol<ffi::Freeifaddrs> =
        sym(&libc, "freeifaddrs").map_err(|e| format!("{LIBC}: {e}"))?;
    let mut list: *mut ffi::Ifaddrs = std::ptr::null_mut();
    // SAFETY: `list` is a valid out-pointer; the list is freed below.
    if unsafe { get(&mut list) } != 0 {
        return Err(format!("getifaddrs: {}", std::io::Error::last_os_error()));
    }
    let mut found = None;
    let mut p = list;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned, alive until
        // freeifaddrs; its name is a C string, its address null or a
        // sockaddr whose family says whether it is a sockaddr_in.
        let (next, hit) = unsafe {
            let e = &*p;
            let same =
                !e.ifa_name.is_null() && CStr::from_ptr(e.ifa_name).to_bytes() == name.as_bytes();
            let v4 = (!e.ifa_addr.is_null() && (*e.ifa_addr).sin_family == AF_INET)
                .then(|| Ipv4Addr::from(u32::from_be((*e.ifa_addr).sin_addr)));
            (e.ifa_next, if same { v4 } else { None })
        };
        if hit.is_some() {
            found = hit;
            break;
        }
        p = next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { free(list) };
    Ok(found)
}

/// Checks that `addr` is on an RDMA port: rdma-core present, a device, and
/// an rdma_cm id binds to the address.
pub fn probe(addr: Ipv4Addr) -> Result<Vec<String>, ProbeError> {
    let devs = devices()?;
    let cm = open(LIBRDMACM)?;
    let mk_ch: Symbol<RdmaCreateEventChannel> = sym(&cm, "rdma_create_event_channel")?;
    let rm_ch: Symbol<RdmaDestroyEventChannel> = sym(&cm, "rdma_destroy_event_channel")?;
    let mk_id: Symbol<RdmaCreateId> = sym(&cm, "rdma_create_id")?;
    let bind: Symbol<RdmaBindAddr> = sym(&cm, "rdma_bind_addr")?;
    let rm_id: Symbol<RdmaDestroyId> = sym(&cm, "rdma_destroy_id")?;
    // SAFETY: no arguments; the channel is destroyed below.
    let ch = unsafe { mk_ch() };
    if ch.is_null() {
        return Err(ProbeError::NotRdmaPort {
            addr,
            why: std::io::Error::last_os_error().to_string(),
        });
    }
    let mut id: *mut ffi::RdmaCmId = std::ptr::null_mut();
    // SAFETY: `ch` is a live channel, `id` a valid out-pointer.
    let rc = unsafe { mk_id(ch, &mut id, std::ptr::null_mut(), RDMA_PS_TCP) };
    let result = if rc != 0 {
        Err(std::io::Error::last_os_error().to_string())
    } else {
        let mut sa = SockaddrIn {
            sin_family: AF_INET,
            sin_port: 0,
            sin_addr: u32::from(addr).to_be(),
            sin_zero: [0; 8],
        };
        // SAFETY: `id` is live; `sa` is a valid sockaddr_in for the call.
        let rc = unsafe { bind(id, &mut sa) };
        let r = if rc != 0 {
            Err(std::io::Error::last_os_error().to_string())
        } else {
            Ok(())
        };
        // SAFETY: `id` was created above and is destroyed once.
        unsafe { rm_id(id) };
        r
    };
    // SAFETY: `ch` was created above, its only id is gone.
    unsafe { rm_ch(ch) };
    result.map_err(|why| ProbeError::NotRdmaPort { addr, why })?;
    Ok(devs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_names_what_is_missing() {
        // Whatever this host has, the answer is one of the named reasons,
        // never a crash; without rdma-core it names the library.
        match probe(Ipv4Addr::LOCALHOST) {
            Ok(devs) => assert!(!devs.is_empty()),
            Err(e) => {
                let s = e.to_string();
                assert!(
                    s.contains("libibverbs.so.1")
                        || s.contains("librdmacm.so.1")
                        || s.contains("no RDMA device")
                        || s.contains("not the address of an RDMA port"),
                    "{s}"
                );
            }
        }
    }
}
