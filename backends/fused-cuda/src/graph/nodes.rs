//! ONNX nodes read into typed operations (attributes checked, constants resolved), one at a time, with every
//! refusal naming the node and what about it is not supported.

use std::collections::HashMap;

use crate::error::{unsupported, Error, Result};
use crate::onnx::proto::{AttributeProto, NodeProto, TensorProto};
use crate::onnx::{tensor_f32, tensor_i64};

/// Operators the matcher understands (anything else is refused at load).
pub const SUPPORTED_OPS: &[&str] = &[
    "Conv",
    "PRelu",
    "LeakyRelu",
    "Relu",
    "Add",
    "Sum",
    "Mul",
    "Concat",
    "DepthToSpace",
    "Reshape",
    "Transpose",
    "Resize",
    "Clip",
    "Identity",
    "Constant",
];

/// A Resize interpolation the executors know.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResizeKind {
    /// Nearest, integer factor (asymmetric + floor, or half-pixel + round: the same for integer factors).
    Nearest,
    /// Linear with half-pixel centres.
    Bilinear,
    /// Cubic with half-pixel centres, no antialias, taps clamped at the edges.
    Cubic {
        /// The `cubic_coeff_a` attribute.
        a: f32,
    },
}

/// One node, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Convolution (3x3 pad 1 or 1x1 pad 0, stride 1, no groups, no dilation).
    Conv {
        /// Data input.
        x: String,
        /// Kernel size.
        k: usize,
        /// Input channels.
        cin: usize,
        /// Output channels.
        cout: usize,
        /// Weights `[cout][cin][k][k]`.
        weight: Vec<f32>,
        /// Bias (zeros when absent).
        bias: Vec<f32>,
    },
    /// PRelu with a constant slope (one per channel, or one for all).
    Prelu {
        /// Input.
        x: String,
        /// Slopes.
        slope: Vec<f32>,
    },
    /// LeakyRelu (alpha) or Relu (alpha 0).
    Leaky {
        /// Input.
        x: String,
        /// Slope below zero.
        alpha: f32,
        /// True for Relu.
        relu: bool,
    },
    /// Multiplication by a constant scalar.
    MulConst {
        /// Input.
        x: String,
        /// The scalar.
        c: f32,
    },
    /// Elementwise sum of two tensors (Add, or Sum of two).
    Add {
        /// Operands.
        a: String,
        /// Operands.
        b: String,
    },
    /// Concatenation on channels.
    Concat {
        /// Operands, in channel order.
        xs: Vec<String>,
    },
    /// DepthToSpace.
    DepthToSpace {
        /// Input.
        x: String,
        /// Block size.
        r: usize,
        /// True for CRD, false for DCR.
        crd: bool,
    },
    /// Reshape with a constant shape (only as part of a pixel shuffle).
    Reshape {
        /// Input.
        x: String,
        /// Target shape.
        shape: Vec<i64>,
    },
    /// Transpose (only as part of a pixel shuffle).
    Transpose {
        /// Input.
        x: String,
        /// Permutation.
        perm: Vec<i64>,
    },
    /// Resize with constant scales, equal on H and W, 1 on N and C.
    Resize {
        /// Input.
        x: String,
        /// Spatial scale.
        scale: f32,
        /// Interpolation.
        kind: ResizeKind,
    },
    /// Clip with constant bounds.
    Clip {
        /// Input.
        x: String,
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// Identity.
    Identity {
        /// Input.
        x: String,
    },
}

/// A node's display name: its name, or its first output when it has none.
pub fn node_name(n: &NodeProto) -> String {
    match n.name() {
        "" => n.output.first().cloned().unwrap_or_else(|| "<unnamed>".to_string()),
        s => s.to_string(),
    }
}

/// Reads nodes against the graph's constants.
pub struct Reader<'a> {
    /// Initializers and Constant outputs by name.
    pub consts: HashMap<String, &'a TensorProto>,
    /// The default-domain opset.
    pub opset: i64,
}

fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name() == name)
}

fn attr_ints(n: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn attr_int(n: &NodeProto, name: &str) -> Option<i64> {
    attr(n, name).and_then(|a| a.i)
}

fn attr_float(n: &NodeProto, name: &str) -> Option<f32> {
    attr(n, name).and_then(|a| a.f)
}

fn attr_str(n: &NodeProto, name: &str) -> Option<String> {
    attr(n, name).and_then(|a| a.s.as_ref()).map(|s| String::from_utf8_lossy(s).into_owned())
}

impl<'a> Reader<'a> {
    fn err(&self, n: &NodeProto, reason: impl Into<String>) -> Error {
        unsupported(&node_name(n), n.op_type(), reason)
    }

    fn input(&self, n: &NodeProto, i: usize) -> Result<String> {
        match n.input.get(i) {
            Some(s) if !s.is_empty() => Ok(s.clone()),
            _ => Err(self.err(n, format!("input {i} is missing"))),
        }
    }

    fn const_f32(&self, n: &NodeProto, i: usize, what: &str) -> Result<Vec<f32>> {
        let name = self.input(n, i)?;
        let t = self.consts.get(&name).ok_or_else(|| self.err(n, format!("{what} \"{name}\" must be a constant")))?;
        tensor_f32(t).map_err(|e| self.err(n, e.to_string()))
    }

    fn const_i64(&self, n: &NodeProto, i: usize, what: &str) -> Result<Vec<i64>> {
        let name = self.input(n, i)?;
        let t = self.consts.get(&name).ok_or_else(|| self.err(n, format!("{what} \"{name}\" must be a constant")))?;
        tensor_i64(t).map_err(|e| self.err(n, e.to_string()))
    }

    fn scalar(&self, n: &NodeProto, i: usize, what: &str) -> Result<Option<f32>> {
        match n.input.get(i) {
            Some(s) if !s.is_empty() => match self.const_f32(n, i, what)?.as_slice() {
                [v] => Ok(Some(*v)),
                v => Err(self.err(n, format!("{what} must be one value, got {}", v.len()))),
            },
            _ => Ok(None),
        }
    }

    /// Whether a value is a constant.
    pub fn is_const(&self, name: &str) -> bool {
        self.consts.contains_key(name)
    }

    /// Reads one node (not Constant: those are in `consts`).
    pub fn read(&self, n: &NodeProto) -> Result<Op> {
        if !n.domain().is_empty() && n.domain() != "ai.onnx" {
            return Err(self.err(n, format!("operator domain \"{}\" is not supported", n.domain())));
        }
        match n.op_type() {
            "Conv" => self.conv(n),
            "PRelu" => Ok(Op::Prelu { x: self.input(n, 0)?, slope: self.const_f32(n, 1, "slope")? }),
            "LeakyRelu" => {
                Ok(Op::Leaky { x: self.input(n, 0)?, alpha: attr_float(n, "alpha").unwrap_or(0.01), relu: false })
            }
            "Relu" => Ok(Op::Leaky { x: self.input(n, 0)?, alpha: 0.0, relu: true }),
            "Mul" => {
                let (a, b) = (self.input(n, 0)?, self.input(n, 1)?);
                let (x, ci) = match (self.is_const(&a), self.is_const(&b)) {
                    (false, true) => (a, 1),
                    (true, false) => (b, 0),
                    _ => return Err(self.err(n, "only multiplication of a tensor by a constant scalar is supported")),
                };
                let c = self.scalar(n, ci, "multiplier")?.unwrap_or(1.0);
                Ok(Op::MulConst { x, c })
            }
            "Add" | "Sum" => {
                if n.input.len() != 2 {
                    return Err(self.err(n, format!("{} operands; only two are supported", n.input.len())));
                }
                let (a, b) = (self.input(n, 0)?, self.input(n, 1)?);
                if self.is_const(&a) || self.is_const(&b) {
                    return Err(self.err(n, "adding a constant is not supported (only a residual tensor)"));
                }
                Ok(Op::Add { a, b })
            }
            "Concat" => {
                let axis = attr_int(n, "axis").unwrap_or(1);
                if axis != 1 && axis != -3 {
                    return Err(self.err(n, format!("axis {axis}: only channel concatenation (axis 1) is supported")));
                }
                let xs = (0..n.input.len()).map(|i| self.input(n, i)).collect::<Result<Vec<_>>>()?;
                Ok(Op::Concat { xs })
            }
            "DepthToSpace" => {
                let r = attr_int(n, "blocksize").unwrap_or(0);
                if r < 1 {
                    return Err(self.err(n, format!("blocksize {r} is not supported")));
                }
                let crd = match attr_str(n, "mode").as_deref().unwrap_or("DCR") {
                    "DCR" => false,
                    "CRD" => true,
                    m => return Err(self.err(n, format!("mode {m} is not supported"))),
                };
                Ok(Op::DepthToSpace { x: self.input(n, 0)?, r: r as usize, crd })
            }
            "Reshape" => Ok(Op::Reshape { x: self.input(n, 0)?, shape: self.const_i64(n, 1, "shape")? }),
            "Transpose" => Ok(Op::Transpose { x: self.input(n, 0)?, perm: attr_ints(n, "perm").unwrap_or_default() }),
            "Resize" => self.resize(n),
            "Clip" => {
                let (lo, hi) = if self.opset < 11 {
                    (attr_float(n, "min"), attr_float(n, "max"))
                } else {
                    (self.scalar(n, 1, "min")?, self.scalar(n, 2, "max")?)
                };
                Ok(Op::Clip { x: self.input(n, 0)?, lo: lo.unwrap_or(f32::MIN), hi: hi.unwrap_or(f32::MAX) })
            }
            "Identity" => Ok(Op::Identity { x: self.input(n, 0)? }),
            other => Err(self.err(
                n,
                format!("operator {other} is not supported by fused-cuda (supported: {})", SUPPORTED_OPS.join(", ")),
            )),
        }
    }

    fn conv(&self, n: &NodeProto) -> Result<Op> {
        let wname = self.input(n, 1)?;
        let wt =
            self.consts.get(&wname).ok_or_else(|| self.err(n, format!("weight \"{wname}\" must be a constant")))?;
        let dims = &wt.dims;
        if dims.len() != 4 {
            return Err(self.err(n, format!("weight of rank {} (only 2-D convolution is supported)", dims.len())));
        }
        let (cout, cin, kh, kw) = (dims[0] as usize, dims[1] as usize, dims[2] as usize, dims[3] as usize);
        if kh != kw || !(kh == 1 || kh == 3) {
            return Err(self.err(n, format!("kernel {kh}x{kw}: only 3x3 and 1x1 are supported")));
        }
        if let Some(ks) = attr_ints(n, "kernel_shape") {
            if ks != [kh as i64, kw as i64] {
                return Err(self.err(n, format!("kernel_shape {ks:?} does not match the weight")));
            }
        }
        let ones = |v: Option<Vec<i64>>| v.is_none_or(|v| v.iter().all(|&x| x == 1));
        if !ones(attr_ints(n, "strides")) {
            return Err(
                self.err(n, format!("strides {:?} are not supported", attr_ints(n, "strides").unwrap_or_default()))
            );
        }
        if !ones(attr_ints(n, "dilations")) {
            let d = attr_ints(n, "dilations").unwrap_or_default();
            return Err(self.err(n, format!("dilations {d:?} are not supported")));
        }
        if attr_int(n, "group").unwrap_or(1) != 1 {
            return Err(self.err(n, format!("group {} is not supported", attr_int(n, "group").unwrap_or(1))));
        }
        let p = (kh / 2) as i64;
        let auto_pad = attr_str(n, "auto_pad").unwrap_or_else(|| "NOTSET".to_string());
        match auto_pad.as_str() {
            "NOTSET" => {
                let pads = attr_ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
                if pads != [p, p, p, p] {
                    return Err(self.err(n, format!("pads {pads:?}: only [{p}, {p}, {p}, {p}] is supported")));
                }
            }
            "SAME_UPPER" | "SAME_LOWER" => {}
            "VALID" if p == 0 => {}
            other => return Err(self.err(n, format!("auto_pad {other} is not supported"))),
        }
        let weight = tensor_f32(wt).map_err(|e| self.err(n, e.to_string()))?;
        let bias = match n.input.get(2) {
            Some(s) if !s.is_empty() => self.const_f32(n, 2, "bias")?,
            _ => vec![0.0; cout],
        };
        if bias.len() != cout {
            return Err(self.err(n, format!("bias has {} values for {cout} output channels", bias.len())));
        }
        Ok(Op::Conv { x: self.input(n, 0)?, k: kh, cin, cout, weight, bias })
    }

    fn resize(&self, n: &NodeProto) -> Result<Op> {
        if self.opset < 11 {
            return Err(self.err(n, format!("Resize of opset {} is not supported (11 or newer)", self.opset)));
        }
        if n.input.get(3).is_some_and(|s| !s.is_empty()) {
            return Err(self.err(n, "Resize by output sizes is not supported; export it with scales"));
        }
        let scales = self.const_f32(n, 2, "scales")?;
        if scales.len() != 4 || scales[0] != 1.0 || scales[1] != 1.0 || scales[2] != scales[3] || scales[2] <= 0.0 {
            return Err(self.err(n, format!("scales {scales:?}: only [1, 1, s, s] is supported")));
        }
        let scale = scales[2];
        let mode = attr_str(n, "mode").unwrap_or_else(|| "nearest".to_string());
        let ctm = attr_str(n, "coordinate_transformation_mode").unwrap_or_else(|| "half_pixel".to_string());
        if attr_int(n, "antialias").unwrap_or(0) != 0 {
            return Err(self.err(n, "antialias is not supported"));
        }
        let half = ctm == "half_pixel" || ctm == "pytorch_half_pixel";
        let kind = match mode.as_str() {
            "nearest" => {
                let nm = attr_str(n, "nearest_mode").unwrap_or_else(|| "round_prefer_floor".to_string());
                let ok = (ctm == "asymmetric" && nm == "floor")
                    || (half && (nm == "round_prefer_floor" || nm == "round_prefer_ceil"));
                if !ok {
                    return Err(self.err(n, format!("nearest with {ctm} / {nm} is not supported")));
                }
                if scale.fract() != 0.0 || scale < 1.0 {
                    return Err(self.err(n, format!("nearest scale {scale}: only integer upsampling is supported")));
                }
                ResizeKind::Nearest
            }
            "linear" if half => {
                if scale.fract() != 0.0 || scale < 1.0 {
                    return Err(self.err(n, format!("linear scale {scale}: only integer upsampling is supported")));
                }
                ResizeKind::Bilinear
            }
            "cubic" if ctm == "half_pixel" => {
                if attr_int(n, "exclude_outside").unwrap_or(0) != 0 {
                    return Err(self.err(n, "cubic with exclude_outside is not supported"));
                }
                ResizeKind::Cubic { a: attr_float(n, "cubic_coeff_a").unwrap_or(-0.75) }
            }
            _ => {
                return Err(
                    self.err(n, format!("mode {mode} with coordinate_transformation_mode {ctm} is not supported"))
                )
            }
        };
        Ok(Op::Resize { x: self.input(n, 0)?, scale, kind })
    }
}

/// The tensor value of a Constant node.
pub fn constant_value(n: &NodeProto) -> Result<&TensorProto> {
    let a = attr(n, "value").ok_or_else(|| {
        unsupported(&node_name(n), "Constant", "only Constant nodes with a tensor `value` are supported")
    })?;
    a.t.as_ref().ok_or_else(|| unsupported(&node_name(n), "Constant", "value tensor is missing"))
}
