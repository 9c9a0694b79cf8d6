//! Matching an ONNX graph into the IR. The graph is recognised by its operators, never by a file hash: each Conv
//! absorbs the activation, constant multiplications and residual additions that follow it, concats become
//! channel slices, a nearest Resize feeding convs becomes upsampled reads, and the ops between the last conv and
//! the graph output (pixel shuffle, upsampled-input add, clamp, bicubic resize) become the tail. Anything else is
//! refused with the node named.

use std::collections::{HashMap, HashSet};

use super::ir::*;
use super::nodes::{constant_value, node_name, Op, Reader, ResizeKind};
use super::place::{share, Groups};
use crate::error::{unsupported, Error, Result};
use crate::onnx::proto::{tensor_proto::DataType, ModelProto, NodeProto};
use crate::onnx::value_elem_type;

/// Most `v = v * s + r` steps one conv epilogue takes (the kernels' limit).
pub const MAX_RESIDUALS: usize = 2;

/// A conv and the nodes it absorbs.
struct Chain {
    conv: usize,
    out: String,
    act: Act,
    residuals: Vec<(f32, Option<String>)>,
    end: usize,
}

struct Ctx<'a> {
    nodes: Vec<&'a NodeProto>,
    ops: Vec<Op>,
    producer: HashMap<String, usize>,
    consumers: HashMap<String, Vec<usize>>,
    input: String,
    output: String,
}

fn op_inputs_mut(op: &mut Op) -> Vec<&mut String> {
    match op {
        Op::Conv { x, .. }
        | Op::Prelu { x, .. }
        | Op::Leaky { x, .. }
        | Op::MulConst { x, .. }
        | Op::DepthToSpace { x, .. }
        | Op::Reshape { x, .. }
        | Op::Transpose { x, .. }
        | Op::Resize { x, .. }
        | Op::Clip { x, .. }
        | Op::Identity { x } => vec![x],
        Op::Add { a, b } => vec![a, b],
        Op::Concat { xs } => xs.iter_mut().collect(),
    }
}

impl<'a> Ctx<'a> {
    fn name(&self, i: usize) -> String {
        node_name(self.nodes[i])
    }

    fn err(&self, i: usize, reason: impl Into<String>) -> Error {
        unsupported(&self.name(i), self.nodes[i].op_type(), reason)
    }

    fn out(&self, i: usize) -> &str {
        self.nodes[i].output.first().map(String::as_str).unwrap_or("")
    }

    fn users(&self, v: &str) -> &[usize] {
        self.consumers.get(v).map(Vec::as_slice).unwrap_or(&[])
    }

    fn prod(&self, v: &str) -> Option<usize> {
        self.producer.get(v).copied()
    }

    /// The one consumer of `v`, if it has exactly one and is not the graph output.
    fn single_user(&self, v: &str) -> Option<usize> {
        match self.users(v) {
            [j] if v != self.output => Some(*j),
            _ => None,
        }
    }
}

/// Matches a decoded ONNX model into a [`Network`].
pub fn match_model(model: &ModelProto) -> Result<Network> {
    let g = model.graph.as_ref().ok_or_else(|| Error::Graph("the model has no graph".into()))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain().is_empty() || o.domain() == "ai.onnx")
        .and_then(|o| o.version)
        .unwrap_or(1);
    let mut consts: HashMap<String, _> = g.initializer.iter().map(|t| (t.name().to_string(), t)).collect();
    for n in g.node.iter().filter(|n| n.op_type() == "Constant") {
        if let Some(o) = n.output.first() {
            consts.insert(o.clone(), constant_value(n)?);
        }
    }
    let inputs: Vec<_> = g.input.iter().filter(|v| !consts.contains_key(v.name())).collect();
    let [input] = inputs.as_slice() else {
        return Err(Error::Graph(format!("{} inputs; the contract is one NCHW RGB input", inputs.len())));
    };
    let [output] = g.output.as_slice() else {
        return Err(Error::Graph(format!("{} outputs; the contract is one NCHW RGB output", g.output.len())));
    };
    let io = match (value_elem_type(input), value_elem_type(output)) {
        (Some(a), Some(b)) if a == b && a == DataType::Float as i32 => IoType::F32,
        (Some(a), Some(b)) if a == b && a == DataType::Float16 as i32 => IoType::F16,
        (a, b) => {
            return Err(Error::Graph(format!(
                "input and output element types {a:?} / {b:?}; the contract is float32 or float16 for both"
            )))
        }
    };
    let reader = Reader { consts, opset };

    // Typed ops; Identity nodes are folded away.
    let mut alias: HashMap<String, String> = HashMap::new();
    let mut nodes = Vec::new();
    let mut ops = Vec::new();
    for n in g.node.iter().filter(|n| n.op_type() != "Constant") {
        let mut op = reader.read(n)?;
        for x in op_inputs_mut(&mut op) {
            if let Some(a) = alias.get(x.as_str()) {
                *x = a.clone();
            }
        }
        if let Op::Identity { x } = &op {
            if let Some(o) = n.output.first() {
                alias.insert(o.clone(), x.clone());
            }
            continue;
        }
        if n.output.len() != 1 {
            return Err(unsupported(&node_name(n), n.op_type(), format!("{} outputs; expected one", n.output.len())));
        }
        nodes.push(n);
        ops.push(op);
    }
    let mut out_name = output.name().to_string();
    while let Some(a) = alias.get(&out_name) {
        out_name = a.clone();
    }
    let mut cx = Ctx {
        nodes,
        ops,
        producer: HashMap::new(),
        consumers: HashMap::new(),
        input: input.name().to_string(),
        output: out_name,
    };
    for i in 0..cx.nodes.len() {
        cx.producer.insert(cx.out(i).to_string(), i);
        let ins: Vec<String> = op_inputs_mut(&mut cx.ops[i].clone()).into_iter().map(|s| s.clone()).collect();
        for x in ins {
            cx.consumers.entry(x).or_default().push(i);
        }
    }
    build(&cx, io, input.name(), output.name())
}

/// Walks back from the graph output over the tail ops; returns the tail, the value the tail conv writes, and the
/// nodes the tail covers.
fn match_tail(cx: &Ctx) -> Result<(Tail, String, f32, Vec<usize>)> {
    let mut tail =
        Tail { shuffle: 1, mode: ShuffleMode::Crd, base: None, clip: None, downscale: None, clip_after: None };
    let mut covered = Vec::new();
    let mut v = cx.output.clone();
    let mut base_scale = 0.0f32;
    let step = |v: &str| -> Option<usize> {
        let i = cx.prod(v)?;
        (cx.users(v).len() <= 1).then_some(i)
    };
    if let Some(i) = step(&v) {
        if let Op::Clip { x, lo, hi } = &cx.ops[i] {
            tail.clip_after = Some((*lo, *hi));
            covered.push(i);
            v = x.clone();
        }
    }
    if let Some(i) = step(&v) {
        if let Op::Resize { x, scale, kind: ResizeKind::Cubic { a } } = &cx.ops[i] {
            tail.downscale = Some(Cubic { scale: *scale, coeff_a: *a });
            covered.push(i);
            v = x.clone();
        }
    }
    if let Some(i) = step(&v) {
        if let Op::Clip { x, lo, hi } = &cx.ops[i] {
            tail.clip = Some((*lo, *hi));
            covered.push(i);
            v = x.clone();
        }
    }
    if tail.downscale.is_none() && tail.clip.is_none() {
        tail.clip = tail.clip_after.take();
    }
    if let Some(i) = step(&v) {
        if let Op::Add { a, b } = &cx.ops[i] {
            // One operand is the input image, or the input image resized up.
            let base_of = |x: &str| -> Option<(Option<usize>, BaseMode, f32)> {
                if x == cx.input {
                    return Some((None, BaseMode::Nearest, 1.0));
                }
                let j = cx.prod(x)?;
                match &cx.ops[j] {
                    Op::Resize { x: src, scale, kind } if *src == cx.input && cx.users(x).len() == 1 => match kind {
                        ResizeKind::Nearest => Some((Some(j), BaseMode::Nearest, *scale)),
                        ResizeKind::Bilinear => Some((Some(j), BaseMode::Bilinear, *scale)),
                        ResizeKind::Cubic { .. } => None,
                    },
                    _ => None,
                }
            };
            let found = match (base_of(a), base_of(b)) {
                (Some(bs), _) => Some((bs, b.clone())),
                (None, Some(bs)) => Some((bs, a.clone())),
                _ => None,
            };
            if let Some(((rj, mode, s), other)) = found {
                tail.base = Some(mode);
                base_scale = s;
                covered.push(i);
                covered.extend(rj);
                v = other;
            }
        }
    }
    if let Some(i) = step(&v) {
        match &cx.ops[i] {
            Op::DepthToSpace { x, r, crd } => {
                tail.shuffle = *r;
                tail.mode = if *crd { ShuffleMode::Crd } else { ShuffleMode::Dcr };
                covered.push(i);
                v = x.clone();
            }
            Op::Reshape { x, shape } if shape.len() == 4 => {
                if let Some((r, mode, nodes, src)) = reshape_shuffle(cx, x) {
                    tail.shuffle = r;
                    tail.mode = mode;
                    covered.push(i);
                    covered.extend(nodes);
                    v = src;
                }
            }
            _ => {}
        }
    }
    Ok((tail, v, base_scale, covered))
}

/// Reshape(6-D) → Transpose → (the caller's Reshape 4-D) as a pixel shuffle: returns the factor, mode, the two
/// inner nodes and the shuffled value.
fn reshape_shuffle(cx: &Ctx, x: &str) -> Option<(usize, ShuffleMode, Vec<usize>, String)> {
    let t = cx.prod(x).filter(|_| cx.users(x).len() == 1)?;
    let Op::Transpose { x: tx, perm } = &cx.ops[t] else { return None };
    let r6 = cx.prod(tx).filter(|_| cx.users(tx).len() == 1)?;
    let Op::Reshape { x: src, shape } = &cx.ops[r6] else { return None };
    if shape.len() != 6 {
        return None;
    }
    let (r1, r2, mode) = match perm.as_slice() {
        [0, 1, 4, 2, 5, 3] => (shape[2], shape[3], ShuffleMode::Crd),
        [0, 3, 4, 1, 5, 2] => (shape[1], shape[2], ShuffleMode::Dcr),
        _ => return None,
    };
    (r1 == r2 && r1 >= 1).then(|| (r1 as usize, mode, vec![t, r6], src.clone()))
}

/// Follows a conv's output over the nodes it can absorb.
fn chain(cx: &Ctx, conv: usize, tail_nodes: &HashSet<usize>) -> Result<Chain> {
    let Op::Conv { cout, .. } = &cx.ops[conv] else { unreachable!("chain starts at a Conv") };
    let mut c = Chain { conv, out: cx.out(conv).to_string(), act: Act::None, residuals: Vec::new(), end: conv };
    while let Some(j) = cx.single_user(&c.out) {
        if tail_nodes.contains(&j) {
            break;
        }
        let fresh = c.act == Act::None && c.residuals.is_empty();
        match &cx.ops[j] {
            Op::Prelu { slope, .. } if fresh => {
                c.act = match slope.len() {
                    1 => Act::Prelu(vec![slope[0]; *cout]),
                    n if n == *cout => Act::Prelu(slope.clone()),
                    n => return Err(cx.err(j, format!("{n} slopes for {cout} channels"))),
                };
            }
            Op::Leaky { alpha, relu, .. } if fresh => c.act = if *relu { Act::Relu } else { Act::Leaky(*alpha) },
            Op::MulConst { c: k, .. } => match c.residuals.last_mut() {
                Some((s, None)) => *s *= k,
                _ => c.residuals.push((*k, None)),
            },
            Op::Add { a, b } => {
                let other = if *a == c.out { b.clone() } else { a.clone() };
                match c.residuals.last_mut() {
                    Some((_, add @ None)) => *add = Some(other),
                    _ => c.residuals.push((1.0, Some(other))),
                }
            }
            _ => break,
        }
        c.out = cx.out(j).to_string();
        c.end = j;
    }
    if c.residuals.len() > MAX_RESIDUALS {
        return Err(cx.err(
            c.end,
            format!(
                "{} scale/add steps after conv \"{}\"; at most {MAX_RESIDUALS} fuse",
                c.residuals.len(),
                cx.name(conv)
            ),
        ));
    }
    Ok(c)
}

/// Shape of a materialised value.
#[derive(Clone, Copy)]
struct Val {
    channels: usize,
    factor: usize,
}

fn build(cx: &Ctx, io: IoType, input_name: &str, output_name: &str) -> Result<Network> {
    let (tail, tail_v, base_scale, tail_cov) = match_tail(cx)?;
    let tail_nodes: HashSet<usize> = tail_cov.iter().copied().collect();
    let mut chains = Vec::new();
    for i in 0..cx.ops.len() {
        if matches!(cx.ops[i], Op::Conv { .. }) {
            chains.push(chain(cx, i, &tail_nodes)?);
        }
    }
    chains.sort_by_key(|c| c.end);
    let Some(tail_idx) = chains.iter().position(|c| c.out == tail_v) else {
        let what = cx.prod(&tail_v).map(|i| format!("node \"{}\" ({})", cx.name(i), cx.nodes[i].op_type()));
        return Err(Error::Graph(format!(
            "the output is not made by a conv followed by pixel shuffle / input add / clamp / resize; it comes from {}",
            what.unwrap_or_else(|| "the input".into())
        )));
    };
    if tail_idx + 1 != chains.len() {
        return Err(cx.err(chains[tail_idx].conv, "the conv that makes the output must run last"));
    }
    let mut covered: HashSet<usize> = tail_nodes.clone();
    for c in &chains {
        covered.extend(c.conv..=c.conv);
        let mut v = cx.out(c.conv).to_string();
        while v != c.out {
            let Some(j) = cx.single_user(&v) else { break };
            covered.insert(j);
            v = cx.out(j).to_string();
        }
    }

    // Shapes of the values layers write, in execution order (inputs precede their readers).
    let mut vals: HashMap<String, Val> = HashMap::new();
    let mut groups = Groups::default();
    let mut homes: HashMap<String, (usize, usize)> = HashMap::new();
    let conv_of = |c: &Chain| match &cx.ops[c.conv] {
        Op::Conv { x, k, cin, cout, weight, bias } => (x.clone(), *k, *cin, *cout, weight.clone(), bias.clone()),
        _ => unreachable!("chains start at Conv"),
    };
    // Resolves what a conv reads: the image, or a written value, possibly through a nearest Resize.
    let resolve = |x: &str, vals: &HashMap<String, Val>| -> Option<(String, usize)> {
        if vals.contains_key(x) {
            return Some((x.to_string(), 1));
        }
        let j = cx.prod(x)?;
        match &cx.ops[j] {
            Op::Resize { x: src, scale, kind: ResizeKind::Nearest } if vals.contains_key(src) => {
                Some((src.clone(), *scale as usize))
            }
            _ => None,
        }
    };
    // First pass: factors and channels of every chain output, concat outputs.
    let mut concat_nodes = Vec::new();
    for (i, op) in cx.ops.iter().enumerate() {
        if let Op::Concat { .. } = op {
            concat_nodes.push(i);
        }
    }
    let mut pending_concats: Vec<usize> = concat_nodes.clone();
    for c in &chains {
        let (x, _, cin, cout, ..) = conv_of(c);
        let factor = if x == cx.input {
            1
        } else {
            // Concats whose operands are known by now can be sized.
            pending_concats.retain(|&ci| {
                let Op::Concat { xs } = &cx.ops[ci] else { return false };
                if xs.iter().all(|x| vals.contains_key(x)) {
                    let f = vals[&xs[0]].factor;
                    let ch = xs.iter().map(|x| vals[x].channels).sum();
                    vals.insert(cx.out(ci).to_string(), Val { channels: ch, factor: f });
                    false
                } else {
                    true
                }
            });
            let Some((src, up)) = resolve(&x, &vals) else {
                let from = cx.prod(&x).map(|j| format!("node \"{}\" ({})", cx.name(j), cx.nodes[j].op_type()));
                return Err(cx.err(
                    c.conv,
                    format!(
                        "its input \"{x}\" comes from {}, which fused-cuda cannot feed to a conv",
                        from.unwrap_or_else(|| "outside the graph".into())
                    ),
                ));
            };
            if let Some(j) = cx.prod(&x).filter(|_| up > 1) {
                covered.insert(j);
            }
            let v = vals[&src];
            if v.channels != cin {
                return Err(cx.err(c.conv, format!("reads {} channels but has {cin} input channels", v.channels)));
            }
            v.factor * up
        };
        vals.insert(c.out.clone(), Val { channels: cout, factor });
    }
    if let Some(&ci) = pending_concats.first() {
        return Err(cx.err(ci, "its operands are not all conv outputs"));
    }
    covered.extend(concat_nodes.iter().copied());

    // Concat groups, largest first; operands must sit consecutively in one buffer.
    concat_nodes.sort_by_key(|&ci| match &cx.ops[ci] {
        Op::Concat { xs } => std::cmp::Reverse(xs.len()),
        _ => std::cmp::Reverse(0),
    });
    for &ci in &concat_nodes {
        let Op::Concat { xs } = &cx.ops[ci] else { continue };
        let f = vals[&xs[0]].factor;
        if xs.iter().any(|x| vals[x].factor != f) {
            return Err(cx.err(ci, "operands of different sizes"));
        }
        let total: usize = xs.iter().map(|x| vals[x].channels).sum();
        let start = match homes.get(&xs[0]) {
            None if xs.iter().all(|x| !homes.contains_key(x)) => {
                let g = groups.add(total, f);
                let mut off = 0;
                for x in xs {
                    homes.insert(x.clone(), (g, off));
                    off += vals[x].channels;
                }
                (g, 0)
            }
            Some(&(g, o)) => {
                let mut off = o;
                for x in xs {
                    if homes.get(x) != Some(&(g, off)) {
                        return Err(cx.err(ci, "its operands are laid out differently by another concat"));
                    }
                    off += vals[x].channels;
                }
                (g, o)
            }
            None => return Err(cx.err(ci, "its operands are laid out differently by another concat")),
        };
        homes.entry(cx.out(ci).to_string()).or_insert(start);
    }
    for c in &chains[..chains.len() - 1] {
        if !homes.contains_key(&c.out) {
            let v = vals[&c.out];
            let g = groups.add(v.channels, v.factor);
            homes.insert(c.out.clone(), (g, 0));
        }
    }
    let slice = |v: &str| -> Slice {
        let (buffer, offset) = homes[v];
        Slice { buffer, offset, channels: vals[v].channels }
    };

    for i in 0..cx.ops.len() {
        if !covered.contains(&i) {
            return Err(cx.err(i, "its output is not used in a way fused-cuda can run (not fused into a conv)"));
        }
    }

    // Layers.
    let mut layers = Vec::new();
    for (li, c) in chains.iter().enumerate() {
        let (x, k, cin, cout, weight, bias) = conv_of(c);
        let factor = vals[&c.out].factor;
        let input = if x == cx.input {
            if li != 0 {
                return Err(cx.err(c.conv, "only the first conv may read the network input"));
            }
            if cin != 3 {
                return Err(cx.err(c.conv, format!("reads the RGB input but has {cin} input channels")));
            }
            Input::Image
        } else {
            let (src, up) = resolve(&x, &vals).ok_or_else(|| cx.err(c.conv, "input cannot be resolved"))?;
            if !homes.contains_key(&src) {
                return Err(cx.err(c.conv, format!("reads \"{src}\", the output of the last conv")));
            }
            Input::Act { slice: slice(&src), upsample: up }
        };
        if li == 0 && input != Input::Image {
            return Err(cx.err(c.conv, "the first conv must read the network input"));
        }
        let mut residuals = Vec::new();
        for (s, add) in &c.residuals {
            let add = match add {
                None => None,
                Some(v) => {
                    let Some(val) = vals.get(v).filter(|_| homes.contains_key(v)) else {
                        return Err(cx.err(c.end, format!("adds \"{v}\", which is not a feature map fused-cuda keeps")));
                    };
                    if val.factor != factor || val.channels != cout {
                        return Err(cx.err(c.end, "adds a tensor of another shape"));
                    }
                    Some(slice(v))
                }
            };
            residuals.push(Residual { scale: *s, add });
        }
        let output = if li + 1 == chains.len() { Output::Image(tail.clone()) } else { Output::Act(slice(&c.out)) };
        layers.push(Layer {
            name: cx.name(c.conv),
            k,
            cin,
            cout,
            weight,
            bias,
            act: c.act.clone(),
            residuals,
            input,
            output,
            factor,
        });
    }
    let last = layers.last().ok_or_else(|| Error::Graph("no Conv in the graph".into()))?;
    let r = tail.shuffle;
    if last.cout != 3 * r * r {
        return Err(cx.err(
            chains[chains.len() - 1].conv,
            format!("makes {} channels; the output needs 3·{r}² = {}", last.cout, 3 * r * r),
        ));
    }
    let pre = last.factor * r;
    if tail.base.is_some() && (base_scale - pre as f32).abs() > 1e-6 {
        return Err(Error::Graph(format!("the input is upsampled by {base_scale} but the network by {pre}")));
    }
    let scale = match tail.downscale {
        None => pre,
        Some(c) => {
            let s = pre as f32 * c.scale;
            if (s - s.round()).abs() > 1e-4 || s.round() < 1.0 {
                return Err(Error::Graph(format!(
                    "final resize by {} of a x{pre} network is not an integer scale",
                    c.scale
                )));
            }
            s.round() as usize
        }
    };
    let family = family(&layers, concat_nodes.len());
    let buffers = share(&groups, &mut layers);
    Ok(Network {
        io,
        input_name: input_name.to_string(),
        output_name: output_name.to_string(),
        family,
        scale,
        buffers,
        layers,
    })
}

fn family(layers: &[Layer], concats: usize) -> Family {
    if layers.len() < 2 {
        return Family::Other;
    }
    let first = &layers[0];
    let f = first.cout;
    let n = layers.len();
    let body = &layers[1..n - 1];
    let tail = &layers[n - 1];
    let shuffles = matches!(&tail.output, Output::Image(t) if t.shuffle > 1 && t.base.is_some());
    if concats == 0 && shuffles && body.iter().all(|l| l.k == 3 && l.cin == f && l.cout == f && l.residuals.is_empty())
    {
        return Family::Compact { features: f, body: body.len() };
    }
    if concats > 0 {
        let growth = body.first().map(|l| l.cout).unwrap_or(0);
        let blocks = body.iter().filter(|l| l.residuals.len() == 2).count();
        return Family::Rrdb { features: f, growth, blocks };
    }
    Family::Other
}
