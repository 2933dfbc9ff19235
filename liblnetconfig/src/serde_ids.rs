//! Serde adapters: NIDs travel in the control protocol as their text form
//! (lnd-api's `Display`/`FromStr`), so a capture of the socket is readable.

/// `Nid` as text.
pub(crate) mod serde_nid {
    use lnd_api::Nid;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(n: &Nid, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(n)
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Nid, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(D::Error::custom)
    }

    /// `Option<Nid>` as an optional string.
    pub(crate) mod opt {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(n: &Option<Nid>, s: S) -> Result<S::Ok, S::Error> {
            match n {
                Some(n) => s.serialize_some(&n.to_string()),
                None => s.serialize_none(),
            }
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Nid>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| s.parse().map_err(D::Error::custom))
                .transpose()
        }
    }

    /// `Vec<Nid>` as a list of strings.
    pub(crate) mod vec {
        use super::*;
        use serde::ser::SerializeSeq;
        pub(crate) fn serialize<S: Serializer>(v: &[Nid], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for n in v {
                seq.serialize_element(&n.to_string())?;
            }
            seq.end()
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Nid>, D::Error> {
            Vec::<String>::deserialize(d)?
                .iter()
                .map(|s| s.parse().map_err(D::Error::custom))
                .collect()
        }
    }
}
