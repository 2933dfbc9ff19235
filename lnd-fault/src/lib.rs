//! # lnd-fault: the fault-injection LND (not yet written)
//!
//! This crate will hold a filter LND that stacks on any other LND and applies
//! `lnetctl fault drop|delay` rules; see `DESIGN.md`. For now it builds an
//! empty `cdylib` that exports no LND. Depends on lnd-api only.

#![forbid(unsafe_code)]
