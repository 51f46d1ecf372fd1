//! The built-in mappings, named in the config (`preset = "guance-easyops"`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
pub(crate) enum Preset {
    /// Guance Cloud events → EasyOps-style alert webhook.
    #[default]
    #[serde(rename = "guance-easyops")]
    GuanceEasyops,
}

impl Preset {
    /// The name the configuration gives it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Preset::GuanceEasyops => "guance-easyops",
        }
    }
}
