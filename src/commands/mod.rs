//! The everyday Kafka operations, one module per command family, plus
//! what one of them needs of its own (`assignment`, `input_lines`,
//! `topic_handle`, `render`).

mod assignment;
pub(crate) mod cluster;
pub(crate) mod consume;
pub(crate) mod groups;
mod input_lines;
pub(crate) mod produce;
pub(crate) mod render;
mod topic_handle;
pub(crate) mod topics;
