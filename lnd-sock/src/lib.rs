//! placeholder
pub mod hello;
pub mod wire;
