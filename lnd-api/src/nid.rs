//! Network identifiers: LND types, networks ([`NetId`]) and NIDs ([`Nid`]).
//!
//! [`Nid`] has the layout of the kernel's large NID (`struct lnet_nid`,
//! `include/uapi/linux/lnet/lnet-types.h`): 20 bytes, network number and address
//! stored big-endian, so that its raw bytes are what a protocol-V4 peer sends.
//! A NID whose address is 4 bytes also has a classic 64-bit form ([`Nid::to_nid4`]).

use abi_stable::StableAbi;

/// LND type numbers (`enum` in `nidstr.h`); values are permanent.
pub mod lnd_type {
    /// The socket LND (`tcp`).
    pub const SOCKLND: u8 = 2;
    /// The verbs LND (`o2ib`).
    pub const O2IBLND: u8 = 5;
    /// The loopback LND (`lo`).
    pub const LOLND: u8 = 9;
    /// Cray Gemini/Aries (`gni`).
    pub const GNILND: u8 = 13;
    /// Cray Gemini IP (`gip`).
    pub const GNIIPLND: u8 = 14;
    /// Portals 4 (`ptlf`).
    pub const PTL4LND: u8 = 15;
    /// HPE kfabric (`kfi`).
    pub const KFILND: u8 = 16;
    /// AWS EFA (`efa`).
    pub const EFALND: u8 = 18;
    /// BXI v3 (`bxi3f`).
    pub const BXI3LND: u8 = 19;
    /// Wildcard marker in [`super::Nid`]'s type byte.
    pub const ANY: u8 = 0xFF;
}

/// A network: an LND type and a network number (`tcp1` is type 2, number 1).
///
/// Classic form (`LNET_MKNET`): `(type << 16) | number`.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NetId {
    /// LND type number (see [`lnd_type`]).
    pub lnd_type: u8,
    /// Network number, 0..=65535 (`tcp` is `tcp0`).
    pub num: u16,
}

impl NetId {
    /// The loopback network `lo`.
    pub const LO: NetId = NetId {
        lnd_type: lnd_type::LOLND,
        num: 0,
    };

    /// A network from its LND type and number.
    pub const fn new(lnd_type: u8, num: u16) -> Self {
        NetId { lnd_type, num }
    }

    /// The classic 32-bit form (`LNET_MKNET`).
    pub const fn to_u32(self) -> u32 {
        ((self.lnd_type as u32) << 16) | self.num as u32
    }

    /// From the classic 32-bit form; `None` when the top byte is set.
    pub const fn from_u32(v: u32) -> Option<Self> {
        if v >> 24 != 0 {
            return None;
        }
        Some(NetId {
            lnd_type: (v >> 16) as u8,
            num: v as u16,
        })
    }
}

/// A NID (`struct lnet_nid`): 20 bytes, compared field by field.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Nid {
    /// Address length minus 4 (0 for IPv4 and numbers, 12 for IPv6; 0xFF for ANY).
    pub size: u8,
    /// LND type number (see [`lnd_type`]).
    pub lnd_type: u8,
    /// Network number, big-endian bytes.
    pub num: [u8; 2],
    /// Address bytes in network order; unused bytes are zero.
    pub addr: [u8; 16],
}

impl Nid {
    /// `LNET_NID_ANY`, printed `<?>`.
    pub const ANY: Nid = Nid {
        size: 0xFF,
        lnd_type: 0xFF,
        num: [0xFF; 2],
        addr: [0xFF; 16],
    };
    /// `0@lo`.
    pub const LO_0: Nid = Nid {
        size: 0,
        lnd_type: lnd_type::LOLND,
        num: [0; 2],
        addr: [0; 16],
    };

    /// A NID with a 4-byte address (IPv4 or a number), `addr` in host order
    /// (`a << 24 | b << 16 | c << 8 | d` for `a.b.c.d`).
    pub const fn new4(net: NetId, addr: u32) -> Self {
        let a = addr.to_be_bytes();
        let n = net.num.to_be_bytes();
        Nid {
            size: 0,
            lnd_type: net.lnd_type,
            num: n,
            addr: [a[0], a[1], a[2], a[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    /// A NID with a 16-byte (IPv6) address.
    pub const fn new16(net: NetId, addr: [u8; 16]) -> Self {
        Nid {
            size: 12,
            lnd_type: net.lnd_type,
            num: net.num.to_be_bytes(),
            addr,
        }
    }

    /// The network of this NID.
    pub const fn net(&self) -> NetId {
        NetId {
            lnd_type: self.lnd_type,
            num: u16::from_be_bytes(self.num),
        }
    }

    /// Whether this is `LNET_NID_ANY`.
    pub const fn is_any(&self) -> bool {
        self.lnd_type == lnd_type::ANY
    }

    /// Number of address bytes (4 or 16), 0 for ANY.
    pub const fn addr_len(&self) -> usize {
        if self.is_any() {
            0
        } else {
            self.size as usize + 4
        }
    }

    /// Whether the NID has a classic 64-bit form (4-byte address).
    pub const fn is_nid4(&self) -> bool {
        self.size == 0 || self.is_any()
    }

    /// The 4-byte address in host order (`None` for a 16-byte address).
    pub const fn addr4(&self) -> Option<u32> {
        if self.size != 0 {
            return None;
        }
        Some(u32::from_be_bytes([
            self.addr[0],
            self.addr[1],
            self.addr[2],
            self.addr[3],
        ]))
    }

    /// The classic 64-bit form (`lnet_nid_to_nid4`); `None` for a 16-byte address.
    pub const fn to_nid4(&self) -> Option<u64> {
        if self.is_any() {
            return Some(u64::MAX);
        }
        match self.addr4() {
            Some(a) => Some(((self.net().to_u32() as u64) << 32) | a as u64),
            None => None,
        }
    }

    /// From the classic 64-bit form (`lnet_nid4_to_nid`).
    pub const fn from_nid4(v: u64) -> Self {
        if v == u64::MAX {
            return Nid::ANY;
        }
        Nid::new4(
            NetId {
                lnd_type: (v >> 48) as u8,
                num: (v >> 32) as u16,
            },
            v as u32,
        )
    }

    /// The 20 raw bytes of `struct lnet_nid` as they go on the wire.
    pub const fn to_bytes(&self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[0] = self.size;
        b[1] = self.lnd_type;
        b[2] = self.num[0];
        b[3] = self.num[1];
        let mut i = 0;
        while i < 16 {
            b[4 + i] = self.addr[i];
            i += 1;
        }
        b
    }

    /// From the 20 raw bytes of `struct lnet_nid`; `None` when the size byte is
    /// neither 0, 12 nor the ANY marker.
    pub const fn from_bytes(b: &[u8; 20]) -> Option<Self> {
        let mut addr = [0u8; 16];
        let mut i = 0;
        while i < 16 {
            addr[i] = b[4 + i];
            i += 1;
        }
        let nid = Nid {
            size: b[0],
            lnd_type: b[1],
            num: [b[2], b[3]],
            addr,
        };
        if nid.lnd_type == lnd_type::ANY {
            return Some(Nid::ANY);
        }
        if nid.size != 0 && nid.size != 12 {
            return None;
        }
        Some(nid)
    }
}
