//! The IR the matcher produces and every executor (the plain-Rust reference, the CUDA runtime) runs: a list of
//! fused convolution layers over NHWC activation buffers, with a head that reads the planar RGB input and a tail
//! that writes the planar RGB output.

/// Element type of the model's input and output (the weights of an f16 file are f16 too; we read them as f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoType {
    /// 32-bit float.
    F32,
    /// 16-bit float.
    F16,
}

/// The network family, for reporting (the executors run any matched graph the same way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Family {
    /// SRVGGNetCompact: conv + act, `body` more conv + act layers of `features` channels, a conv to 3·r² channels,
    /// pixel shuffle and the upsampled input added.
    Compact {
        /// Feature channels.
        features: usize,
        /// 3x3 convs between the first and the last.
        body: usize,
    },
    /// RRDBNet: residual-in-residual dense blocks of concatenated features, then nearest 2x upsampling convs.
    Rrdb {
        /// Feature channels.
        features: usize,
        /// Channels each dense conv adds.
        growth: usize,
        /// Residual-in-residual dense blocks.
        blocks: usize,
    },
    /// Matched, but neither of the two families by shape.
    Other,
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Family::Compact { features, body } => write!(f, "SRVGGNetCompact ({features} features, {body} body convs)"),
            Family::Rrdb { features, growth, blocks } => {
                write!(f, "RRDBNet ({features} features, growth {growth}, {blocks} blocks)")
            }
            Family::Other => write!(f, "conv net"),
        }
    }
}

/// Activation fused after bias.
#[derive(Debug, Clone, PartialEq)]
pub enum Act {
    /// Identity.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `x < 0 ? alpha·x : x`.
    Leaky(f32),
    /// Per-output-channel slope.
    Prelu(Vec<f32>),
}

/// Channels `[offset, offset + channels)` of an NHWC activation buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    /// Index into [`Network::buffers`].
    pub buffer: usize,
    /// First channel.
    pub offset: usize,
    /// Number of channels.
    pub channels: usize,
}

/// An NHWC f16 activation buffer of the CUDA runtime (f32 in the reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Channels per pixel (the row stride in elements is `channels`).
    pub channels: usize,
    /// Spatial size relative to the network input (1, 2 or 4 for RRDB's upsampling stages).
    pub factor: usize,
}

/// One `v = v * scale + add` step of an epilogue (`add` absent: a plain scale).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Residual {
    /// Multiplier of the running value.
    pub scale: f32,
    /// Tensor added after scaling (same pixels and channels as the output).
    pub add: Option<Slice>,
}

/// Where a layer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The network's planar RGB input image.
    Image,
    /// An activation slice, optionally read through a nearest upsampling by `upsample` (fused Resize).
    Act {
        /// What is read.
        slice: Slice,
        /// Nearest-neighbour factor applied to the slice before the conv (1: none).
        upsample: usize,
    },
}

/// Pixel-shuffle channel order (ONNX DepthToSpace modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShuffleMode {
    /// Depth-column-row: channel `(dy·r + dx)·C + c`.
    Dcr,
    /// Column-row-depth (PyTorch PixelShuffle): channel `c·r² + dy·r + dx`.
    Crd,
}

/// How the input image is upsampled for the tail's residual.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseMode {
    /// Nearest neighbour, integer factor.
    Nearest,
    /// Bilinear, half-pixel centres, edge-clamped.
    Bilinear,
}

/// Bicubic resize of the tail's output (ONNX Resize cubic, half-pixel, no antialias, edge-clamped taps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cubic {
    /// Output size = floor(input size · scale); coordinates use this scale.
    pub scale: f32,
    /// The cubic coefficient `a` (-0.75 in the shipped models).
    pub coeff_a: f32,
}

/// What follows the last conv before the planar output.
#[derive(Debug, Clone, PartialEq)]
pub struct Tail {
    /// Pixel shuffle factor and mode (factor 1: none).
    pub shuffle: usize,
    /// Channel order of the shuffle.
    pub mode: ShuffleMode,
    /// The input image upsampled by `shuffle · upsample-of-input` and added, if the graph does.
    pub base: Option<BaseMode>,
    /// Clamp after the add.
    pub clip: Option<(f32, f32)>,
    /// Final bicubic resize.
    pub downscale: Option<Cubic>,
    /// Clamp after the resize.
    pub clip_after: Option<(f32, f32)>,
}

/// Where a layer writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// An activation slice (NHWC, at the input's spatial size times the upsampling).
    Act(Slice),
    /// The planar RGB output, through the tail ops.
    Image(Tail),
}

/// One convolution with everything fused around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// The ONNX Conv node's name.
    pub name: String,
    /// Kernel size (1 or 3); padding is `k / 2`, stride 1.
    pub k: usize,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Weights in ONNX order `[cout][cin][k][k]`.
    pub weight: Vec<f32>,
    /// Bias per output channel (zeros where the Conv had none).
    pub bias: Vec<f32>,
    /// Activation after bias.
    pub act: Act,
    /// Epilogue steps after the activation, in order.
    pub residuals: Vec<Residual>,
    /// What it reads.
    pub input: Input,
    /// What it writes.
    pub output: Output,
    /// Spatial size of the output relative to the network input.
    pub factor: usize,
}

/// A matched network.
#[derive(Debug, Clone, PartialEq)]
pub struct Network {
    /// IO element type.
    pub io: IoType,
    /// Graph input name.
    pub input_name: String,
    /// Graph output name.
    pub output_name: String,
    /// Family, for reporting.
    pub family: Family,
    /// Output size / input size (an integer).
    pub scale: usize,
    /// Activation buffers (reused between layers whose lifetimes do not overlap).
    pub buffers: Vec<Buffer>,
    /// Layers in execution order; the first reads [`Input::Image`], the last writes [`Output::Image`].
    pub layers: Vec<Layer>,
}

impl Network {
    /// Whether some conv has more than 64 input channels (RRDB's dense blocks): such networks take their own tile
    /// table row.
    pub fn is_dense(&self) -> bool {
        self.layers.iter().any(|l| l.cin > 64)
    }

    /// Multiply-adds per input pixel (for speed reports).
    pub fn macs_per_pixel(&self) -> f64 {
        self.layers.iter().map(|l| (l.k * l.k * l.cin * l.cout * l.factor * l.factor) as f64).sum()
    }

    /// The tail (the last layer's output ops).
    pub fn tail(&self) -> Option<&Tail> {
        match &self.layers.last()?.output {
            Output::Image(t) => Some(t),
            Output::Act(_) => None,
        }
    }

    /// Output size for an input size.
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        (h * self.scale, w * self.scale)
    }
}
