//! Where an event failed: the label of a rejection in logs, metrics and the
//! dead letter's `kbridge.stage` header.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Decode,
    Validate,
    Map,
    Deliver,
    /// Absorbed by a storm route (`[route.storm] dead_letter_absorbed`):
    /// `dedupe`, `flap` or `max_age`.
    Absorbed(&'static str),
}

impl Stage {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Validate => "validate",
            Stage::Map => "map",
            Stage::Deliver => "deliver",
            Stage::Absorbed(why) => why,
        }
    }
}
