//! Bindings of the parts of rdma-core's `infiniband/verbs.h` and
//! `rdma/rdma_cma.h` (rdma-core 44, Debian's `libibverbs-dev` and
//! `librdmacm-dev`) that the `rdma` provider uses (and of glibc's
//! `getifaddrs`, for interface names), written once by hand
//! from the headers and checked against them: [`layout`] lists the size,
//! alignment and offset of every field used and every constant, and the
//! tests compare it with the values of `layout.c` (compiled against the
//! installed headers) and with the LP64 values recorded here.
//!
//! Fields the provider never touches are kept as padding of the right size
//! (named `_rest`, `_pad`...), so the structs the libraries allocate are
//! read at the right offsets and those we allocate have the right size.
//!
//! `ibv_post_send`, `ibv_post_recv` and `ibv_poll_cq` are inline functions
//! in verbs.h that call through `ibv_context.ops`: the provider does the
//! same through [`IbvContextOps`].

#![allow(non_camel_case_types, missing_docs)]

use std::ffi::{c_char, c_int, c_void};

/// `struct ibv_sge`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IbvSge {
    pub addr: u64,
    pub length: u32,
    pub lkey: u32,
}

/// `wr.rdma` of `struct ibv_send_wr` (the `wr` union is 32 bytes: its
/// largest member is `atomic`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IbvRdmaWr {
    pub remote_addr: u64,
    pub rkey: u32,
    pub _pad: u32,
    pub _atomic_rest: [u64; 2],
}

/// `struct ibv_send_wr`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IbvSendWr {
    pub wr_id: u64,
    pub next: *mut IbvSendWr,
    pub sg_list: *mut IbvSge,
    pub num_sge: c_int,
    /// `enum ibv_wr_opcode`.
    pub opcode: u32,
    pub send_flags: u32,
    /// `imm_data` / `invalidate_rkey`.
    pub imm_data: u32,
    pub wr: IbvRdmaWr,
    /// `qp_type.xrc.remote_srqn`.
    pub qp_type: u32,
    pub _pad: u32,
    /// The `bind_mw` / `tso` union.
    pub bind_mw: [u64; 6],
}

impl Default for IbvSendWr {
    fn default() -> Self {
        IbvSendWr {
            wr_id: 0,
            next: std::ptr::null_mut(),
            sg_list: std::ptr::null_mut(),
            num_sge: 0,
            opcode: 0,
            send_flags: 0,
            imm_data: 0,
            wr: IbvRdmaWr::default(),
            qp_type: 0,
            _pad: 0,
            bind_mw: [0; 6],
        }
    }
}

/// `struct ibv_recv_wr`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IbvRecvWr {
    pub wr_id: u64,
    pub next: *mut IbvRecvWr,
    pub sg_list: *mut IbvSge,
    pub num_sge: c_int,
}

/// `struct ibv_wc`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IbvWc {
    pub wr_id: u64,
    /// `enum ibv_wc_status`.
    pub status: u32,
    /// `enum ibv_wc_opcode`.
    pub opcode: u32,
    pub vendor_err: u32,
    pub byte_len: u32,
    pub imm_data: u32,
    pub qp_num: u32,
    pub src_qp: u32,
    pub wc_flags: u32,
    pub pkey_index: u16,
    pub slid: u16,
    pub sl: u8,
    pub dlid_path_bits: u8,
}

/// `struct ibv_qp_cap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IbvQpCap {
    pub max_send_wr: u32,
    pub max_recv_wr: u32,
    pub max_send_sge: u32,
    pub max_recv_sge: u32,
    pub max_inline_data: u32,
}

/// `struct ibv_qp_init_attr`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IbvQpInitAttr {
    pub qp_context: *mut c_void,
    pub send_cq: *mut IbvCq,
    pub recv_cq: *mut IbvCq,
    pub srq: *mut c_void,
    pub cap: IbvQpCap,
    /// `enum ibv_qp_type`.
    pub qp_type: u32,
    pub sq_sig_all: c_int,
}

pub type PollCqFn = unsafe extern "C" fn(cq: *mut IbvCq, n: c_int, wc: *mut IbvWc) -> c_int;
pub type ReqNotifyCqFn = unsafe extern "C" fn(cq: *mut IbvCq, solicited_only: c_int) -> c_int;
pub type PostSendFn =
    unsafe extern "C" fn(qp: *mut IbvQp, wr: *mut IbvSendWr, bad: *mut *mut IbvSendWr) -> c_int;
pub type PostRecvFn =
    unsafe extern "C" fn(qp: *mut IbvQp, wr: *mut IbvRecvWr, bad: *mut *mut IbvRecvWr) -> c_int;

/// `struct ibv_context_ops`: 32 function pointers, of which the provider
/// calls four (what verbs.h's inline `ibv_poll_cq`, `ibv_req_notify_cq`,
/// `ibv_post_send` and `ibv_post_recv` call).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IbvContextOps {
    /// `_compat_query_device` .. `dealloc_mw`, `_compat_create_cq`.
    pub _before_poll_cq: [*mut c_void; 11],
    pub poll_cq: Option<PollCqFn>,
    pub req_notify_cq: Option<ReqNotifyCqFn>,
    /// `_compat_cq_event` .. `_compat_destroy_qp`.
    pub _before_post_send: [*mut c_void; 12],
    pub post_send: Option<PostSendFn>,
    pub post_recv: Option<PostRecvFn>,
    /// `_compat_create_ah` .. `_compat_async_event`.
    pub _after: [*mut c_void; 5],
}

/// `struct ibv_context`.
#[repr(C)]
#[derive(Debug)]
pub struct IbvContext {
    pub device: *mut c_void,
    pub ops: IbvContextOps,
    pub cmd_fd: c_int,
    pub async_fd: c_int,
    pub num_comp_vectors: c_int,
    pub _pad: u32,
    /// `pthread_mutex_t` (40 bytes on Linux x86_64 and aarch64).
    pub mutex: [u64; 5],
    pub abi_compat: *mut c_void,
}

/// `struct ibv_pd`.
#[repr(C)]
#[derive(Debug)]
pub struct IbvPd {
    pub context: *mut IbvContext,
    pub handle: u32,
}

/// `struct ibv_mr`.
#[repr(C)]
#[derive(Debug)]
pub struct IbvMr {
    pub context: *mut IbvContext,
    pub pd: *mut IbvPd,
    pub addr: *mut c_void,
    pub length: usize,
    pub handle: u32,
    pub lkey: u32,
    pub rkey: u32,
}

/// `struct ibv_cq`.
#[repr(C)]
#[derive(Debug)]
pub struct IbvCq {
    pub context: *mut IbvContext,
    pub channel: *mut c_void,
    pub cq_context: *mut c_void,
    pub handle: u32,
    pub cqe: c_int,
    /// `mutex`, `cond`, `comp_events_completed`, `async_events_completed`.
    pub _rest: [u64; 12],
}

/// `struct ibv_qp`.
#[repr(C)]
#[derive(Debug)]
pub struct IbvQp {
    pub context: *mut IbvContext,
    pub qp_context: *mut c_void,
    pub pd: *mut IbvPd,
    pub send_cq: *mut IbvCq,
    pub recv_cq: *mut IbvCq,
    pub srq: *mut c_void,
    pub handle: u32,
    pub qp_num: u32,
    /// `enum ibv_qp_state`.
    pub state: u32,
    /// `enum ibv_qp_type`.
    pub qp_type: u32,
    /// `mutex`, `cond`, `events_completed`.
    pub _rest: [u64; 12],
}

/// `struct ibv_device_attr` (`ibv_query_device`): the device's limits.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IbvDeviceAttr {
    pub fw_ver: [u8; 64],
    pub node_guid: u64,
    pub sys_image_guid: u64,
    pub max_mr_size: u64,
    pub page_size_cap: u64,
    pub vendor_id: u32,
    pub vendor_part_id: u32,
    pub hw_ver: u32,
    pub max_qp: c_int,
    pub max_qp_wr: c_int,
    pub device_cap_flags: u32,
    pub max_sge: c_int,
    pub max_sge_rd: c_int,
    pub max_cq: c_int,
    pub max_cqe: c_int,
    /// `max_mr` .. `max_srq_sge` (22 `int`s).
    pub _rest: [c_int; 22],
    pub max_pkeys: u16,
    pub local_ca_ack_delay: u8,
    pub phys_port_cnt: u8,
}

impl Default for IbvDeviceAttr {
    fn default() -> Self {
        IbvDeviceAttr {
            fw_ver: [0; 64],
            node_guid: 0,
            sys_image_guid: 0,
            max_mr_size: 0,
            page_size_cap: 0,
            vendor_id: 0,
            vendor_part_id: 0,
            hw_ver: 0,
            max_qp: 0,
            max_qp_wr: 0,
            device_cap_flags: 0,
            max_sge: 0,
            max_sge_rd: 0,
            max_cq: 0,
            max_cqe: 0,
            _rest: [0; 22],
            max_pkeys: 0,
            local_ca_ack_delay: 0,
            phys_port_cnt: 0,
        }
    }
}

/// `struct rdma_conn_param`: the private data (o2iblnd's CONNREQ/CONNACK)
/// and the connection's RDMA parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RdmaConnParam {
    pub private_data: *const c_void,
    pub private_data_len: u8,
    pub responder_resources: u8,
    pub initiator_depth: u8,
    pub flow_control: u8,
    pub retry_count: u8,
    pub rnr_retry_count: u8,
    pub srq: u8,
    pub qp_num: u32,
}

/// `struct rdma_cm_event`.
#[repr(C)]
#[derive(Debug)]
pub struct RdmaCmEvent {
    pub id: *mut RdmaCmId,
    pub listen_id: *mut RdmaCmId,
    /// `enum rdma_cm_event_type`.
    pub event: u32,
    pub status: c_int,
    /// `param.conn` (the union's `ud` member is larger).
    pub conn: RdmaConnParam,
    pub _ud_rest: [u64; 4],
}

/// `struct rdma_cm_id`.
#[repr(C)]
#[derive(Debug)]
pub struct RdmaCmId {
    pub verbs: *mut IbvContext,
    pub channel: *mut RdmaEventChannel,
    pub context: *mut c_void,
    pub qp: *mut IbvQp,
    /// `struct rdma_route` (addresses, path records).
    pub route: [u64; 39],
    /// `enum rdma_port_space`.
    pub ps: u32,
    pub port_num: u8,
    pub _pad: [u8; 3],
    pub event: *mut RdmaCmEvent,
    pub send_cq_channel: *mut c_void,
    pub send_cq: *mut IbvCq,
    pub recv_cq_channel: *mut c_void,
    pub recv_cq: *mut IbvCq,
    pub srq: *mut c_void,
    pub pd: *mut IbvPd,
    /// `enum ibv_qp_type`.
    pub qp_type: u32,
}

/// Where `route.addr.dst_addr` (the peer's `struct sockaddr`, what
/// `rdma_get_peer_addr` returns) lies in `rdma_cm_id.route`: after the
/// source address's `sockaddr_storage`.
pub const ROUTE_DST_ADDR: usize = 128;

/// `struct rdma_event_channel`.
#[repr(C)]
#[derive(Debug)]
pub struct RdmaEventChannel {
    pub fd: c_int,
}

/// `struct ibv_comp_channel`: the fd a CQ's completion events arrive on.
#[repr(C)]
#[derive(Debug)]
pub struct IbvCompChannel {
    pub context: *mut IbvContext,
    pub fd: c_int,
    pub refcnt: c_int,
}

/// glibc's `struct pollfd`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PollFd {
    pub fd: c_int,
    pub events: i16,
    pub revents: i16,
}

/// `struct sockaddr_in` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SockaddrIn {
    pub sin_family: u16,
    /// Network order.
    pub sin_port: u16,
    /// Network order.
    pub sin_addr: u32,
    pub sin_zero: [u8; 8],
}

/// glibc's `struct ifaddrs` (`getifaddrs(3)`), to find an interface's
/// IPv4 address by name.
#[repr(C)]
#[derive(Debug)]
pub struct Ifaddrs {
    pub ifa_next: *mut Ifaddrs,
    pub ifa_name: *const c_char,
    pub ifa_flags: u32,
    pub ifa_addr: *mut SockaddrIn,
    pub ifa_netmask: *mut c_void,
    pub ifa_ifu: *mut c_void,
    pub ifa_data: *mut c_void,
}

pub type Getifaddrs = unsafe extern "C" fn(out: *mut *mut Ifaddrs) -> c_int;
pub type Freeifaddrs = unsafe extern "C" fn(list: *mut Ifaddrs);

// Constants (enum values of the headers).
pub const IBV_WR_RDMA_WRITE: u32 = 0;
pub const IBV_WR_SEND: u32 = 2;
pub const IBV_WR_RDMA_READ: u32 = 4;
pub const IBV_SEND_SIGNALED: u32 = 2;
pub const IBV_QPT_RC: u32 = 2;
pub const IBV_WC_SEND: u32 = 0;
pub const IBV_WC_RDMA_WRITE: u32 = 1;
pub const IBV_WC_RDMA_READ: u32 = 2;
pub const IBV_WC_RECV: u32 = 128;
pub const IBV_ACCESS_LOCAL_WRITE: c_int = 1;
pub const IBV_ACCESS_REMOTE_WRITE: c_int = 2;
pub const IBV_ACCESS_REMOTE_READ: c_int = 4;
pub const IBV_ACCESS_ON_DEMAND: c_int = 64;
pub const RDMA_PS_TCP: c_int = 0x0106;
pub const RDMA_CM_EVENT_ADDR_RESOLVED: u32 = 0;
pub const RDMA_CM_EVENT_ADDR_ERROR: u32 = 1;
pub const RDMA_CM_EVENT_ROUTE_RESOLVED: u32 = 2;
pub const RDMA_CM_EVENT_ROUTE_ERROR: u32 = 3;
pub const RDMA_CM_EVENT_CONNECT_REQUEST: u32 = 4;
pub const RDMA_CM_EVENT_CONNECT_ERROR: u32 = 6;
pub const RDMA_CM_EVENT_UNREACHABLE: u32 = 7;
pub const RDMA_CM_EVENT_REJECTED: u32 = 8;
pub const RDMA_CM_EVENT_ESTABLISHED: u32 = 9;
pub const RDMA_CM_EVENT_DISCONNECTED: u32 = 10;
pub const RDMA_CM_EVENT_DEVICE_REMOVAL: u32 = 11;
pub const RDMA_CM_EVENT_TIMEWAIT_EXIT: u32 = 15;
/// `POLLIN`.
pub const POLLIN: i16 = 1;
/// `fcntl` commands and the flag used.
pub const F_GETFL: c_int = 3;
pub const F_SETFL: c_int = 4;
pub const O_NONBLOCK: c_int = 0o4000;
/// `AF_INET`.
pub const AF_INET: u16 = 2;

// Entry points (looked up by name with libloading).
pub type IbvGetDeviceList = unsafe extern "C" fn(num: *mut c_int) -> *mut *mut c_void;
pub type IbvFreeDeviceList = unsafe extern "C" fn(list: *mut *mut c_void);
pub type IbvGetDeviceName = unsafe extern "C" fn(dev: *mut c_void) -> *const c_char;
pub type IbvAllocPd = unsafe extern "C" fn(ctx: *mut IbvContext) -> *mut IbvPd;
pub type IbvDeallocPd = unsafe extern "C" fn(pd: *mut IbvPd) -> c_int;
pub type IbvCreateCq = unsafe extern "C" fn(
    ctx: *mut IbvContext,
    cqe: c_int,
    cq_context: *mut c_void,
    channel: *mut c_void,
    comp_vector: c_int,
) -> *mut IbvCq;
pub type IbvDestroyCq = unsafe extern "C" fn(cq: *mut IbvCq) -> c_int;
pub type IbvCreateCompChannel = unsafe extern "C" fn(ctx: *mut IbvContext) -> *mut IbvCompChannel;
pub type IbvDestroyCompChannel = unsafe extern "C" fn(ch: *mut IbvCompChannel) -> c_int;
pub type IbvGetCqEvent = unsafe extern "C" fn(
    ch: *mut IbvCompChannel,
    cq: *mut *mut IbvCq,
    cq_context: *mut *mut c_void,
) -> c_int;
pub type IbvAckCqEvents = unsafe extern "C" fn(cq: *mut IbvCq, nevents: std::ffi::c_uint);
pub type IbvRegMr = unsafe extern "C" fn(
    pd: *mut IbvPd,
    addr: *mut c_void,
    len: usize,
    access: c_int,
) -> *mut IbvMr;
pub type IbvDeregMr = unsafe extern "C" fn(mr: *mut IbvMr) -> c_int;
pub type IbvQueryDevice =
    unsafe extern "C" fn(ctx: *mut IbvContext, attr: *mut IbvDeviceAttr) -> c_int;
pub type RdmaCreateEventChannel = unsafe extern "C" fn() -> *mut RdmaEventChannel;
pub type RdmaDestroyEventChannel = unsafe extern "C" fn(ch: *mut RdmaEventChannel);
pub type RdmaCreateId = unsafe extern "C" fn(
    ch: *mut RdmaEventChannel,
    id: *mut *mut RdmaCmId,
    ctx: *mut c_void,
    ps: c_int,
) -> c_int;
pub type RdmaDestroyId = unsafe extern "C" fn(id: *mut RdmaCmId) -> c_int;
pub type RdmaBindAddr = unsafe extern "C" fn(id: *mut RdmaCmId, addr: *mut SockaddrIn) -> c_int;
pub type RdmaResolveAddr = unsafe extern "C" fn(
    id: *mut RdmaCmId,
    src: *mut SockaddrIn,
    dst: *mut SockaddrIn,
    timeout_ms: c_int,
) -> c_int;
pub type RdmaResolveRoute = unsafe extern "C" fn(id: *mut RdmaCmId, timeout_ms: c_int) -> c_int;
pub type RdmaListen = unsafe extern "C" fn(id: *mut RdmaCmId, backlog: c_int) -> c_int;
pub type RdmaConnect = unsafe extern "C" fn(id: *mut RdmaCmId, p: *mut RdmaConnParam) -> c_int;
pub type RdmaAccept = unsafe extern "C" fn(id: *mut RdmaCmId, p: *mut RdmaConnParam) -> c_int;
pub type RdmaReject =
    unsafe extern "C" fn(id: *mut RdmaCmId, private_data: *const c_void, len: u8) -> c_int;
pub type RdmaDisconnect = unsafe extern "C" fn(id: *mut RdmaCmId) -> c_int;
/// `rdma_get_dst_port`: the peer's port, big-endian (`__be16`).
pub type RdmaGetDstPort = unsafe extern "C" fn(id: *mut RdmaCmId) -> u16;
pub type RdmaGetCmEvent =
    unsafe extern "C" fn(ch: *mut RdmaEventChannel, ev: *mut *mut RdmaCmEvent) -> c_int;
pub type RdmaAckCmEvent = unsafe extern "C" fn(ev: *mut RdmaCmEvent) -> c_int;
pub type RdmaCreateQp =
    unsafe extern "C" fn(id: *mut RdmaCmId, pd: *mut IbvPd, attr: *mut IbvQpInitAttr) -> c_int;
pub type RdmaDestroyQp = unsafe extern "C" fn(id: *mut RdmaCmId);
pub type RdmaMigrateId =
    unsafe extern "C" fn(id: *mut RdmaCmId, ch: *mut RdmaEventChannel) -> c_int;

/// The layout of the bindings as `layout.c` prints it: `(KIND NAME, value)`
/// for every struct size and alignment, field offset and constant used.
pub fn layout() -> Vec<(String, usize)> {
    use std::mem::{align_of, offset_of, size_of};
    let mut v: Vec<(String, usize)> = Vec::new();
    macro_rules! s {
        ($c:literal, $t:ty) => {
            v.push((concat!("size ", $c).to_string(), size_of::<$t>()));
            v.push((concat!("align ", $c).to_string(), align_of::<$t>()));
        };
    }
    macro_rules! o {
        ($c:literal, $t:ty, $($f:tt).+) => {
            v.push((concat!("offset ", $c).to_string(), offset_of!($t, $($f).+)));
        };
    }
    macro_rules! k {
        ($c:ident) => {
            v.push((concat!("const ", stringify!($c)).to_string(), $c as usize));
        };
    }
    s!("ibv_sge", IbvSge);
    o!("ibv_sge.addr", IbvSge, addr);
    o!("ibv_sge.length", IbvSge, length);
    o!("ibv_sge.lkey", IbvSge, lkey);
    s!("ibv_send_wr", IbvSendWr);
    o!("ibv_send_wr.wr_id", IbvSendWr, wr_id);
    o!("ibv_send_wr.next", IbvSendWr, next);
    o!("ibv_send_wr.sg_list", IbvSendWr, sg_list);
    o!("ibv_send_wr.num_sge", IbvSendWr, num_sge);
    o!("ibv_send_wr.opcode", IbvSendWr, opcode);
    o!("ibv_send_wr.send_flags", IbvSendWr, send_flags);
    o!("ibv_send_wr.imm_data", IbvSendWr, imm_data);
    o!("ibv_send_wr.wr.rdma.remote_addr", IbvSendWr, wr.remote_addr);
    o!("ibv_send_wr.wr.rdma.rkey", IbvSendWr, wr.rkey);
    o!("ibv_send_wr.qp_type", IbvSendWr, qp_type);
    o!("ibv_send_wr.bind_mw", IbvSendWr, bind_mw);
    s!("ibv_recv_wr", IbvRecvWr);
    o!("ibv_recv_wr.wr_id", IbvRecvWr, wr_id);
    o!("ibv_recv_wr.next", IbvRecvWr, next);
    o!("ibv_recv_wr.sg_list", IbvRecvWr, sg_list);
    o!("ibv_recv_wr.num_sge", IbvRecvWr, num_sge);
    s!("ibv_wc", IbvWc);
    o!("ibv_wc.wr_id", IbvWc, wr_id);
    o!("ibv_wc.status", IbvWc, status);
    o!("ibv_wc.opcode", IbvWc, opcode);
    o!("ibv_wc.vendor_err", IbvWc, vendor_err);
    o!("ibv_wc.byte_len", IbvWc, byte_len);
    o!("ibv_wc.imm_data", IbvWc, imm_data);
    o!("ibv_wc.qp_num", IbvWc, qp_num);
    o!("ibv_wc.src_qp", IbvWc, src_qp);
    o!("ibv_wc.wc_flags", IbvWc, wc_flags);
    o!("ibv_wc.pkey_index", IbvWc, pkey_index);
    o!("ibv_wc.slid", IbvWc, slid);
    o!("ibv_wc.sl", IbvWc, sl);
    o!("ibv_wc.dlid_path_bits", IbvWc, dlid_path_bits);
    s!("ibv_qp_cap", IbvQpCap);
    o!("ibv_qp_cap.max_send_wr", IbvQpCap, max_send_wr);
    o!("ibv_qp_cap.max_recv_wr", IbvQpCap, max_recv_wr);
    o!("ibv_qp_cap.max_send_sge", IbvQpCap, max_send_sge);
    o!("ibv_qp_cap.max_recv_sge", IbvQpCap, max_recv_sge);
    o!("ibv_qp_cap.max_inline_data", IbvQpCap, max_inline_data);
    s!("ibv_qp_init_attr", IbvQpInitAttr);
    o!("ibv_qp_init_attr.qp_context", IbvQpInitAttr, qp_context);
    o!("ibv_qp_init_attr.send_cq", IbvQpInitAttr, send_cq);
    o!("ibv_qp_init_attr.recv_cq", IbvQpInitAttr, recv_cq);
    o!("ibv_qp_init_attr.srq", IbvQpInitAttr, srq);
    o!("ibv_qp_init_attr.cap", IbvQpInitAttr, cap);
    o!("ibv_qp_init_attr.qp_type", IbvQpInitAttr, qp_type);
    o!("ibv_qp_init_attr.sq_sig_all", IbvQpInitAttr, sq_sig_all);
    s!("ibv_context_ops", IbvContextOps);
    o!("ibv_context_ops.poll_cq", IbvContextOps, poll_cq);
    o!(
        "ibv_context_ops.req_notify_cq",
        IbvContextOps,
        req_notify_cq
    );
    o!("ibv_context_ops.post_send", IbvContextOps, post_send);
    o!("ibv_context_ops.post_recv", IbvContextOps, post_recv);
    s!("ibv_context", IbvContext);
    o!("ibv_context.device", IbvContext, device);
    o!("ibv_context.ops", IbvContext, ops);
    o!("ibv_context.cmd_fd", IbvContext, cmd_fd);
    o!("ibv_context.async_fd", IbvContext, async_fd);
    o!("ibv_context.num_comp_vectors", IbvContext, num_comp_vectors);
    o!("ibv_context.mutex", IbvContext, mutex);
    o!("ibv_context.abi_compat", IbvContext, abi_compat);
    s!("ibv_pd", IbvPd);
    o!("ibv_pd.context", IbvPd, context);
    o!("ibv_pd.handle", IbvPd, handle);
    s!("ibv_mr", IbvMr);
    o!("ibv_mr.context", IbvMr, context);
    o!("ibv_mr.pd", IbvMr, pd);
    o!("ibv_mr.addr", IbvMr, addr);
    o!("ibv_mr.length", IbvMr, length);
    o!("ibv_mr.handle", IbvMr, handle);
    o!("ibv_mr.lkey", IbvMr, lkey);
    o!("ibv_mr.rkey", IbvMr, rkey);
    s!("ibv_cq", IbvCq);
    o!("ibv_cq.context", IbvCq, context);
    o!("ibv_cq.channel", IbvCq, channel);
    o!("ibv_cq.cq_context", IbvCq, cq_context);
    o!("ibv_cq.handle", IbvCq, handle);
    o!("ibv_cq.cqe", IbvCq, cqe);
    s!("ibv_qp", IbvQp);
    o!("ibv_qp.context", IbvQp, context);
    o!("ibv_qp.qp_context", IbvQp, qp_context);
    o!("ibv_qp.pd", IbvQp, pd);
    o!("ibv_qp.send_cq", IbvQp, send_cq);
    o!("ibv_qp.recv_cq", IbvQp, recv_cq);
    o!("ibv_qp.srq", IbvQp, srq);
    o!("ibv_qp.handle", IbvQp, handle);
    o!("ibv_qp.qp_num", IbvQp, qp_num);
    o!("ibv_qp.state", IbvQp, state);
    o!("ibv_qp.qp_type", IbvQp, qp_type);
    s!("rdma_conn_param", RdmaConnParam);
    o!("rdma_conn_param.private_data", RdmaConnParam, private_data);
    o!(
        "rdma_conn_param.private_data_len",
        RdmaConnParam,
        private_data_len
    );
    o!(
        "rdma_conn_param.responder_resources",
        RdmaConnParam,
        responder_resources
    );
    o!(
        "rdma_conn_param.initiator_depth",
        RdmaConnParam,
        initiator_depth
    );
    o!("rdma_conn_param.flow_control", RdmaConnParam, flow_control);
    o!("rdma_conn_param.retry_count", RdmaConnParam, retry_count);
    o!(
        "rdma_conn_param.rnr_retry_count",
        RdmaConnParam,
        rnr_retry_count
    );
    o!("rdma_conn_param.srq", RdmaConnParam, srq);
    o!("rdma_conn_param.qp_num", RdmaConnParam, qp_num);
    s!("rdma_cm_event", RdmaCmEvent);
    o!("rdma_cm_event.id", RdmaCmEvent, id);
    o!("rdma_cm_event.listen_id", RdmaCmEvent, listen_id);
    o!("rdma_cm_event.event", RdmaCmEvent, event);
    o!("rdma_cm_event.status", RdmaCmEvent, status);
    o!("rdma_cm_event.param", RdmaCmEvent, conn);
    v.push(("size rdma_route".into(), size_of::<[u64; 39]>()));
    v.push(("align rdma_route".into(), align_of::<[u64; 39]>()));
    s!("rdma_cm_id", RdmaCmId);
    o!("rdma_cm_id.verbs", RdmaCmId, verbs);
    o!("rdma_cm_id.channel", RdmaCmId, channel);
    o!("rdma_cm_id.context", RdmaCmId, context);
    o!("rdma_cm_id.qp", RdmaCmId, qp);
    o!("rdma_cm_id.route", RdmaCmId, route);
    o!("rdma_cm_id.ps", RdmaCmId, ps);
    o!("rdma_cm_id.port_num", RdmaCmId, port_num);
    o!("rdma_cm_id.event", RdmaCmId, event);
    o!("rdma_cm_id.pd", RdmaCmId, pd);
    o!("rdma_cm_id.qp_type", RdmaCmId, qp_type);
    v.push((
        "offset rdma_cm_id.route.addr.dst_addr".into(),
        offset_of!(RdmaCmId, route) + ROUTE_DST_ADDR,
    ));
    s!("rdma_event_channel", RdmaEventChannel);
    o!("rdma_event_channel.fd", RdmaEventChannel, fd);
    s!("ibv_comp_channel", IbvCompChannel);
    o!("ibv_comp_channel.context", IbvCompChannel, context);
    o!("ibv_comp_channel.fd", IbvCompChannel, fd);
    o!("ibv_comp_channel.refcnt", IbvCompChannel, refcnt);
    s!("pollfd", PollFd);
    o!("pollfd.fd", PollFd, fd);
    o!("pollfd.events", PollFd, events);
    o!("pollfd.revents", PollFd, revents);
    s!("sockaddr_in", SockaddrIn);
    s!("ibv_device_attr", IbvDeviceAttr);
    o!("ibv_device_attr.max_mr_size", IbvDeviceAttr, max_mr_size);
    o!("ibv_device_attr.max_qp_wr", IbvDeviceAttr, max_qp_wr);
    o!("ibv_device_attr.max_sge", IbvDeviceAttr, max_sge);
    o!("ibv_device_attr.max_cqe", IbvDeviceAttr, max_cqe);
    o!("ibv_device_attr.max_pkeys", IbvDeviceAttr, max_pkeys);
    k!(IBV_WR_RDMA_WRITE);
    k!(IBV_WR_SEND);
    k!(IBV_WR_RDMA_READ);
    k!(IBV_SEND_SIGNALED);
    k!(IBV_QPT_RC);
    k!(IBV_WC_RECV);
    k!(IBV_WC_SEND);
    k!(IBV_WC_RDMA_WRITE);
    k!(IBV_WC_RDMA_READ);
    k!(IBV_ACCESS_LOCAL_WRITE);
    k!(IBV_ACCESS_REMOTE_WRITE);
    k!(IBV_ACCESS_REMOTE_READ);
    k!(RDMA_PS_TCP);
    k!(RDMA_CM_EVENT_ADDR_RESOLVED);
    k!(RDMA_CM_EVENT_ROUTE_RESOLVED);
    k!(RDMA_CM_EVENT_CONNECT_REQUEST);
    k!(RDMA_CM_EVENT_REJECTED);
    k!(RDMA_CM_EVENT_ESTABLISHED);
    k!(RDMA_CM_EVENT_DISCONNECTED);
    k!(RDMA_CM_EVENT_DEVICE_REMOVAL);
    k!(RDMA_CM_EVENT_TIMEWAIT_EXIT);
    k!(POLLIN);
    k!(IBV_ACCESS_ON_DEMAND);
    k!(F_GETFL);
    k!(F_SETFL);
    k!(O_NONBLOCK);
    k!(RDMA_CM_EVENT_ADDR_ERROR);
    k!(RDMA_CM_EVENT_ROUTE_ERROR);
    k!(RDMA_CM_EVENT_CONNECT_ERROR);
    k!(RDMA_CM_EVENT_UNREACHABLE);
    s!("ifaddrs", Ifaddrs);
    o!("ifaddrs.ifa_next", Ifaddrs, ifa_next);
    o!("ifaddrs.ifa_name", Ifaddrs, ifa_name);
    o!("ifaddrs.ifa_flags", Ifaddrs, ifa_flags);
    o!("ifaddrs.ifa_addr", Ifaddrs, ifa_addr);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `layout.c`'s output on x86_64 with rdma-core 44 (Debian), recorded:
    /// checked on every host, headers or not.
    const LP64: &str = include_str!("layout.lp64.txt");

    fn parse(text: &str) -> Vec<(String, usize)> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (k, v) = l.rsplit_once(' ').expect("KIND NAME VALUE");
                (k.to_string(), v.parse().expect("a number"))
            })
            .collect()
    }

    fn compare(expected: &[(String, usize)], source: &str) {
        let ours = layout();
        assert_eq!(
            ours.len(),
            expected.len(),
            "the Rust side and {source} list different items"
        );
        for ((k, v), (ek, ev)) in ours.iter().zip(expected) {
            assert_eq!(k, ek, "items out of order against {source}");
            assert_eq!(v, ev, "{k}: Rust says {v}, {source} says {ev}");
        }
    }

    #[test]
    #[cfg(all(target_pointer_width = "64", target_os = "linux"))]
    fn layout_matches_the_recorded_lp64_values() {
        compare(&parse(LP64), "layout.lp64.txt");
    }

    /// Compiles `layout.c` against the installed rdma-core headers and
    /// compares every line. Without the headers or a C compiler it says so
    /// and checks nothing more than the recorded values.
    #[test]
    fn layout_matches_rdma_core_headers() {
        let have = std::path::Path::new("/usr/include/infiniband/verbs.h").exists()
            && std::path::Path::new("/usr/include/rdma/rdma_cma.h").exists();
        if !have {
            eprintln!(
                "rdma-core headers not installed (apt install libibverbs-dev librdmacm-dev): \
                 layout checked against the recorded values only"
            );
            return;
        }
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src/sys/layout.c");
        let dir = std::env::temp_dir().join(format!("lnd-o2ib-layout-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let exe = dir.join("layout");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let out = std::process::Command::new(&cc)
            .arg("-o")
            .arg(&exe)
            .arg(src)
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                eprintln!(
                    "no C compiler ({cc}: {e}): layout checked against the recorded values only"
                );
                return;
            }
        };
        assert!(
            out.status.success(),
            "{cc} {src}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = std::process::Command::new(&exe)
            .output()
            .expect("run layout");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(run.status.success());
        let text = String::from_utf8(run.stdout).expect("text");
        compare(&parse(&text), "the installed headers");
    }
}
