//! # lnd-o2ib: the verbs LND (not yet written)
//!
//! This crate will hold o2iblnd's protocol over a small verbs interface with
//! two providers (rdma-core opened at run time, and a software provider); see
//! `DESIGN.md`. For now it builds an empty `cdylib` that exports no LND, so
//! loading it is refused as "not an LND plugin". Depends on lnd-api only.

#![forbid(unsafe_code)]
