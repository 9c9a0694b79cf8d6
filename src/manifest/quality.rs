//! `[quality]`: the gates every output passes before it is published, and the optional reference measurement.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[quality]`: all optional; the gates are on by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualitySection {
    /// Run the gates at all. Off publishes whatever the model makes (not recommended on a farm).
    #[serde(default = "on")]
    pub gates: bool,
    /// Fail a file whose model output holds NaN or infinity in any frame (FP16 overflow).
    #[serde(default = "on")]
    pub non_finite: bool,
    /// Fail a file with an output frame that is flat (one colour: black, grey...) where its input frame is not.
    #[serde(default = "on")]
    pub flat: bool,
    /// Standard deviation of luma (0–1) below which a frame counts as flat.
    #[serde(default = "flat_below")]
    #[schemars(range(min = 0.0, max = 0.5))]
    pub flat_below: f64,
    /// Record PSNR and SSIM of the output, downscaled with bicubic, against the input on sampled frames: catches a
    /// wrong model or a colour bug. Recorded in the report, never failed on.
    #[serde(default)]
    pub reference: Reference,
    /// Frames between two reference samples.
    #[serde(default = "every")]
    #[schemars(range(min = 1))]
    pub reference_every: u32,
}

/// The reference measurement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Reference {
    /// Not measured.
    #[default]
    Off,
    /// The output downscaled with a bicubic filter, against the input.
    Bicubic,
}

fn on() -> bool {
    true
}

fn flat_below() -> f64 {
    0.002
}

fn every() -> u32 {
    30
}

impl Default for QualitySection {
    fn default() -> Self {
        QualitySection {
            gates: true,
            non_finite: true,
            flat: true,
            flat_below: flat_below(),
            reference: Reference::Off,
            reference_every: every(),
        }
    }
}
