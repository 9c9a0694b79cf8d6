//! A tiny ONNX graph builder (prost messages) for synthetic test models with seeded weights.

use videoforge_backend_fused_cuda::onnx::proto::*;

/// A graph under construction.
pub struct G {
    /// Nodes so far.
    pub nodes: Vec<NodeProto>,
    /// Initializers so far.
    pub inits: Vec<TensorProto>,
    seed: u64,
    n: usize,
}

/// An ints attribute.
pub fn attr_ints_pub(name: &str, v: &[i64]) -> AttributeProto {
    attr_ints(name, v)
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_proto::AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_proto::AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

/// A float attribute.
pub fn attr_f(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_proto::AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

/// A string attribute.
pub fn attr_s(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_proto::AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn value(name: &str, elem: i32, dims: [Option<i64>; 4]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Some(v) => tensor_shape_proto::dimension::Value::DimValue(*v),
                None => tensor_shape_proto::dimension::Value::DimParam("D".into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl G {
    /// An empty graph with a weight seed.
    pub fn new(seed: u64) -> G {
        G { nodes: Vec::new(), inits: Vec::new(), seed, n: 0 }
    }

    fn rand(&mut self) -> f32 {
        self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn fresh(&mut self, p: &str) -> String {
        self.n += 1;
        format!("{p}{}", self.n)
    }

    /// A float initializer.
    pub fn init(&mut self, name: &str, dims: &[i64], data: Vec<f32>) -> String {
        self.inits.push(TensorProto {
            name: Some(name.into()),
            dims: dims.to_vec(),
            data_type: Some(tensor_proto::DataType::Float as i32),
            float_data: data,
            ..Default::default()
        });
        name.to_string()
    }

    /// An int64 initializer.
    pub fn init_i64(&mut self, name: &str, data: Vec<i64>) -> String {
        self.inits.push(TensorProto {
            name: Some(name.into()),
            dims: vec![data.len() as i64],
            data_type: Some(tensor_proto::DataType::Int64 as i32),
            int64_data: data,
            ..Default::default()
        });
        name.to_string()
    }

    /// A node with one output; returns the output's name.
    pub fn node(&mut self, op: &str, name: &str, inputs: &[&str], attrs: Vec<AttributeProto>) -> String {
        let out = self.fresh("t");
        self.nodes.push(NodeProto {
            name: Some(name.into()),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    /// A k×k conv with seeded weights scaled for stable activations.
    pub fn conv(&mut self, name: &str, x: &str, cin: usize, cout: usize, k: usize) -> String {
        let fan = (cin * k * k) as f32;
        let w: Vec<f32> = (0..cout * cin * k * k).map(|_| self.rand() * 1.5 / fan.sqrt()).collect();
        let b: Vec<f32> = (0..cout).map(|_| self.rand() * 0.1).collect();
        let wn = self.init(&format!("{name}.w"), &[cout as i64, cin as i64, k as i64, k as i64], w);
        let bn = self.init(&format!("{name}.b"), &[cout as i64], b);
        let p = (k / 2) as i64;
        let attrs = vec![attr_ints("kernel_shape", &[k as i64, k as i64]), attr_ints("pads", &[p, p, p, p])];
        self.node("Conv", name, &[x, &wn, &bn], attrs)
    }

    /// PRelu with seeded per-channel slopes.
    pub fn prelu(&mut self, name: &str, x: &str, c: usize) -> String {
        let s: Vec<f32> = (0..c).map(|_| 0.25 + self.rand() * 0.2).collect();
        let sn = self.init(&format!("{name}.slope"), &[c as i64, 1, 1], s);
        self.node("PRelu", name, &[x, &sn], vec![])
    }

    /// Mul by a scalar constant.
    pub fn mul(&mut self, name: &str, x: &str, c: f32) -> String {
        let cn = self.init(&format!("{name}.c"), &[], vec![c]);
        self.node("Mul", name, &[x, &cn], vec![])
    }

    /// Resize with scales.
    pub fn resize(&mut self, name: &str, x: &str, s: f32, attrs: Vec<AttributeProto>) -> String {
        let sn = self.init(&format!("{name}.scales"), &[4], vec![1.0, 1.0, s, s]);
        self.node("Resize", name, &[x, "", &sn], attrs)
    }

    /// The model bytes, renaming `last` to the output `output`.
    pub fn finish(mut self, last: &str, f16_io: bool) -> Vec<u8> {
        for n in &mut self.nodes {
            for o in &mut n.output {
                if o == last {
                    *o = "output".into();
                }
            }
        }
        let elem = if f16_io { tensor_proto::DataType::Float16 } else { tensor_proto::DataType::Float } as i32;
        let m = ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(17) }],
            producer_name: Some("fused-cuda tests".into()),
            graph: Some(GraphProto {
                name: Some("synthetic".into()),
                node: self.nodes,
                initializer: self.inits,
                input: vec![value("input", elem, [Some(1), Some(3), None, None])],
                output: vec![value("output", elem, [Some(1), Some(3), None, None])],
                ..Default::default()
            }),
            ..Default::default()
        };
        prost::Message::encode_to_vec(&m)
    }
}
