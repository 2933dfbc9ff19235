//! placeholder
pub mod hello;
pub mod iface;
pub mod params;
pub mod wire;
