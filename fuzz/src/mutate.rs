//! Mutations: byte-level ones for any input, and structure-aware ones for JSON (a
//! node of the parsed tree replaced by a value of another shape) and for binary
//! headers (a 16- or 32-bit field set to an extreme).

use serde_json::Value;

/// The largest input produced.
pub const MAX_LEN: usize = 64 * 1024;

/// Byte values that often matter to parsers.
const INTERESTING: &[u8] = &[
    0, 0xff, 0x7f, 0x80, 0xc3, 0xe0, b'"', b'\\', b'{', b'}', b'[', b']', b'<', b'>', b'&', b';',
    b'#', b'/', b':', b',', b'-', b'.', b'0', b'9', b'\n',
];

/// A new input made from `input` (and sometimes another corpus entry `other`).
pub fn mutate(
    rng: &mut fastrand::Rng,
    input: &[u8],
    other: &[u8],
    dict: &[&[u8]],
    json: bool,
) -> Vec<u8> {
    if json
        && rng.u8(..10) < 4
        && let Some(out) = mutate_json(rng, input)
    {
        return out;
    }
    let mut out = input.to_vec();
    for _ in 0..=rng.usize(..4) {
        mutate_bytes(rng, &mut out, other, dict);
    }
    out.truncate(MAX_LEN);
    out
}

fn range(rng: &mut fastrand::Rng, len: usize) -> (usize, usize) {
    if len == 0 {
        return (0, 0);
    }
    let a = rng.usize(..len);
    let max = (len - a).min(if rng.bool() { 8 } else { 256 });
    (a, a + rng.usize(1..=max.max(1)).min(len - a))
}

fn mutate_bytes(rng: &mut fastrand::Rng, out: &mut Vec<u8>, other: &[u8], dict: &[&[u8]]) {
    let len = out.len();
    match rng.u8(..10) {
        0 if len > 0 => {
            let i = rng.usize(..len);
            out[i] ^= 1 << rng.u8(..8);
        }
        1 if len > 0 => {
            let i = rng.usize(..len);
            out[i] = INTERESTING[rng.usize(..INTERESTING.len())];
        }
        2 if len > 0 => {
            let (a, b) = range(rng, len);
            out.drain(a..b);
        }
        3 => {
            let at = rng.usize(..=len);
            let n = rng.usize(1..9);
            let bytes: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
            out.splice(at..at, bytes);
        }
        4 if len > 0 => {
            let (a, b) = range(rng, len);
            let copy = out[a..b].to_vec();
            let at = rng.usize(..=len);
            out.splice(at..at, copy);
        }
        5 | 6 if !dict.is_empty() => {
            let token = dict[rng.usize(..dict.len())];
            let at = rng.usize(..=len);
            if rng.bool() || len == 0 {
                out.splice(at..at, token.iter().copied());
            } else {
                let (a, b) = range(rng, len);
                out.splice(a..b, token.iter().copied());
            }
        }
        7 if !other.is_empty() => {
            let cut = rng.usize(..=len);
            let from = rng.usize(..other.len());
            out.truncate(cut);
            out.extend_from_slice(&other[from..]);
        }
        8 if len > 0 => out.truncate(rng.usize(..len)),
        9 if len >= 4 => {
            // A binary header field (width, height, length, count) set to an extreme.
            let i = rng.usize(..len - 3);
            let v: u32 = match rng.u8(..5) {
                0 => 0,
                1 => u32::MAX,
                2 => 0x7fff_ffff,
                3 => 0xffff,
                _ => 1 << rng.u32(8..31),
            };
            let bytes = if rng.bool() {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            let n = if rng.bool() { 2 } else { 4 };
            out[i..i + n].copy_from_slice(&bytes[4 - n..]);
        }
        _ => {
            let at = rng.usize(..=len);
            out.insert(at, INTERESTING[rng.usize(..INTERESTING.len())]);
        }
    }
}

/// Parse `input` as JSON, change it once or twice (a node replaced with a value of
/// another shape, an array element repeated, numbers set to an extreme), serialise.
/// Two changes at once reach what one cannot: a list entry repeated *and* its counts
/// made huge is what overflows a sum.
fn mutate_json(rng: &mut fastrand::Rng, input: &[u8]) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(input).ok()?;
    for _ in 0..rng.usize(1..=2) {
        match rng.u8(..6) {
            0 => {
                let arrays = count_arrays(&v);
                if arrays > 0 {
                    let target = rng.usize(..arrays);
                    repeat_element(rng, &mut v, target, &mut 0);
                }
            }
            1 => {
                let x = extreme(rng);
                extreme_numbers(rng, &mut v, x);
            }
            _ => {
                let count = count_nodes(&v);
                let target = rng.usize(..count.max(1));
                let replacement = odd_value(rng, &v);
                replace_node(&mut v, target, &mut 0, replacement);
            }
        }
    }
    serde_json::to_vec(&v)
        .ok()
        .filter(|out| out.len() <= MAX_LEN)
}

/// A number at or past the edge of what a count, an id or an index holds.
fn extreme(rng: &mut fastrand::Rng) -> Value {
    match rng.u8(..8) {
        0 => serde_json::json!(u64::MAX),
        1 => serde_json::json!(1u64 << 63),
        2 => serde_json::json!(u64::from(u32::MAX) + 1),
        3 => serde_json::json!(i64::MIN),
        4 => serde_json::json!(-1),
        5 => serde_json::json!(0),
        6 => serde_json::json!(0.5),
        _ => serde_json::json!(1e308),
    }
}

/// Set each number of `v` to `x`, with probability one half.
fn extreme_numbers(rng: &mut fastrand::Rng, v: &mut Value, x: Value) {
    match v {
        Value::Number(_) if rng.bool() => *v = x,
        Value::Array(a) => a
            .iter_mut()
            .for_each(|e| extreme_numbers(rng, e, x.clone())),
        Value::Object(o) => o
            .values_mut()
            .for_each(|e| extreme_numbers(rng, e, x.clone())),
        _ => {}
    }
}

fn count_arrays(v: &Value) -> usize {
    match v {
        Value::Array(a) => usize::from(!a.is_empty()) + a.iter().map(count_arrays).sum::<usize>(),
        Value::Object(o) => o.values().map(count_arrays).sum(),
        _ => 0,
    }
}

/// In the `target`-th non-empty array, repeat one element (right after itself).
fn repeat_element(rng: &mut fastrand::Rng, v: &mut Value, target: usize, seen: &mut usize) -> bool {
    match v {
        Value::Array(a) if !a.is_empty() => {
            if *seen == target {
                let i = rng.usize(..a.len());
                let copy = a[i].clone();
                a.insert(i + 1, copy);
                return true;
            }
            *seen += 1;
            a.iter_mut().any(|e| repeat_element(rng, e, target, seen))
        }
        Value::Object(o) => o.values_mut().any(|e| repeat_element(rng, e, target, seen)),
        _ => false,
    }
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

fn replace_node(v: &mut Value, target: usize, seen: &mut usize, with: Value) -> bool {
    if *seen == target {
        *v = with;
        return true;
    }
    *seen += 1;
    match v {
        Value::Array(a) => {
            for x in a.iter_mut() {
                if replace_node(x, target, seen, with.clone()) {
                    return true;
                }
            }
        }
        Value::Object(o) => {
            for x in o.values_mut() {
                if replace_node(x, target, seen, with.clone()) {
                    return true;
                }
            }
        }
        _ => {}
    }
    false
}

/// A value whose shape an engine's parser may not expect.
fn odd_value(rng: &mut fastrand::Rng, whole: &Value) -> Value {
    match rng.u8(..14) {
        0 => Value::Null,
        1 => Value::Bool(rng.bool()),
        2 => serde_json::json!(-1),
        3 => serde_json::json!(1e308),
        4 => serde_json::json!(u64::MAX),
        5 => serde_json::json!(""),
        6 => serde_json::json!("//img.example/x.jpg"),
        7 => serde_json::json!("<b>x</b> &amp;lt; &#x1F438; &#99999999; &"),
        8 => serde_json::json!([]),
        9 => serde_json::json!({}),
        10 => {
            let mut v = Value::Null;
            for _ in 0..rng.usize(1..120) {
                v = Value::Array(vec![v]);
            }
            v
        }
        11 => Value::String("\u{e000}é🐸".repeat(rng.usize(1..2000))),
        12 => serde_json::json!("9999999999999999999999 x 0"),
        _ => whole.clone(),
    }
}
