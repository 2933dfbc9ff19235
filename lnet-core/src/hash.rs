//! The fast keyed hasher of the maps a message touches: defined in
//! `lnd_api::hash` so the LNDs' per-message maps (lnd-sock's peer and
//! connection tables) use the same one.

pub use lnd_api::hash::{FastHasher, FastMap, FastSet, FastState};
