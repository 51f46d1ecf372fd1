//! The strict JSON check: a JSON text read as a strict reader would read
//! it, without building it. Used wherever kbridge passes JSON on that it
//! did not build itself: the preset's decode (a lone surrogate escape in a
//! skipped field), its tags, and a jq map's output.

/// Reads a JSON text as a strict reader (serde_json, Jackson) would, without
/// building it: numbers are read, so `1e999` is out of range, and strings
/// are decoded, so a lone surrogate is an error. `IgnoredAny` and
/// `RawValue` only check the syntax, and what they pass may still be
/// refused by the target.
pub(crate) fn strict_json(json: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<Strict>(json).map(|Strict| ())
}

/// Any JSON value, read and dropped (see [`strict_json`]).
struct Strict;

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        while map.next_entry::<Strict, Strict>()?.is_some() {}
        Ok(Strict)
    }
}
