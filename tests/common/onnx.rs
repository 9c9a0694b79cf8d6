//! ONNX models built in the test, byte by byte: `Conv 1x1 (3 → 3·s²) + DepthToSpace(s)` with chosen weights, so
//! a test can make an exact nearest-neighbour model, one whose output is all zero, or one that outputs NaN. The
//! protobuf encoding is written out here (a few field kinds of onnx.proto) to need nothing but the test itself.

fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Field `n` as a varint.
fn int(n: u32, v: i64, out: &mut Vec<u8>) {
    varint(u64::from(n) << 3, out);
    varint(v as u64, out);
}

/// Field `n` as length-delimited bytes (strings, nested messages).
fn bytes(n: u32, data: &[u8], out: &mut Vec<u8>) {
    varint((u64::from(n) << 3) | 2, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

fn msg(build: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    build(&mut v);
    v
}

/// A `ValueInfoProto` of a float tensor `[1, 3, h, w]` with named dynamic height and width.
fn value_info(name: &str, h: &str, w: &str) -> Vec<u8> {
    let dim_value = |v: i64| msg(|d| int(1, v, d));
    let dim_param = |p: &str| msg(|d| bytes(2, p.as_bytes(), d));
    let shape = msg(|s| {
        bytes(1, &dim_value(1), s);
        bytes(1, &dim_value(3), s);
        bytes(1, &dim_param(h), s);
        bytes(1, &dim_param(w), s);
    });
    let tensor = msg(|t| {
        int(1, 1, t); // elem_type FLOAT
        bytes(2, &shape, t);
    });
    let ty = msg(|t| bytes(1, &tensor, t));
    msg(|v| {
        bytes(1, name.as_bytes(), v);
        bytes(2, &ty, v);
    })
}

/// `Conv 1x1 (3 → 3·scale²)` with `weight(out_channel, in_channel)`, then `DepthToSpace(scale, CRD)`: input
/// `input`, output `output`, NCHW RGB f32, dynamic H/W, opset 13.
pub fn conv_depth_to_space(scale: u32, weight: impl Fn(usize, usize) -> f32) -> Vec<u8> {
    let out_ch = 3 * (scale * scale) as usize;
    let mut raw = Vec::with_capacity(out_ch * 3 * 4);
    for o in 0..out_ch {
        for i in 0..3 {
            raw.extend_from_slice(&weight(o, i).to_le_bytes());
        }
    }
    let initializer = msg(|t| {
        for d in [out_ch as i64, 3, 1, 1] {
            int(1, d, t);
        }
        int(2, 1, t); // FLOAT
        bytes(8, b"w", t);
        bytes(9, &raw, t);
    });
    let conv = msg(|n| {
        bytes(1, b"input", n);
        bytes(1, b"w", n);
        bytes(2, b"c", n);
        bytes(3, b"conv", n);
        bytes(4, b"Conv", n);
    });
    let attr_int = |name: &str, v: i64| {
        msg(|a| {
            bytes(1, name.as_bytes(), a);
            int(3, v, a);
            int(20, 2, a); // INT
        })
    };
    let attr_str = |name: &str, v: &str| {
        msg(|a| {
            bytes(1, name.as_bytes(), a);
            bytes(4, v.as_bytes(), a);
            int(20, 3, a); // STRING
        })
    };
    let d2s = msg(|n| {
        bytes(1, b"c", n);
        bytes(2, b"output", n);
        bytes(3, b"d2s", n);
        bytes(4, b"DepthToSpace", n);
        bytes(5, &attr_int("blocksize", i64::from(scale)), n);
        bytes(5, &attr_str("mode", "CRD"), n);
    });
    let graph = msg(|g| {
        bytes(1, &conv, g);
        bytes(1, &d2s, g);
        bytes(2, b"test", g);
        bytes(5, &initializer, g);
        bytes(11, &value_info("input", "H", "W"), g);
        bytes(12, &value_info("output", "H2", "W2"), g);
    });
    let opset = msg(|o| int(2, 13, o));
    msg(|m| {
        int(1, 8, m); // ir_version
        bytes(2, b"videoforge-tests", m);
        bytes(7, &graph, m);
        bytes(8, &opset, m);
    })
}

/// Exact nearest-neighbour upscaling by `scale` (each output channel copies its input channel).
pub fn nearest(scale: u32) -> Vec<u8> {
    let per = (scale * scale) as usize;
    conv_depth_to_space(scale, |o, i| if o / per == i { 1.0 } else { 0.0 })
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("model written");
    p
}
