//! The everyday Kafka operations, one module per command family.

pub(crate) mod cluster;
pub(crate) mod consume;
pub(crate) mod groups;
mod input_lines;
pub(crate) mod produce;
pub(crate) mod render;
pub(crate) mod topics;
