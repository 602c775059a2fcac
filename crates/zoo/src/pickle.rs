//! A small Python pickle reader: enough of protocols 2–4 to read PyTorch checkpoints.
//!
//! Nothing is executed. Class references (`GLOBAL`) stay names, and calling one (`REDUCE`,
//! `NEWOBJ`) gives a [`Value::Object`] that records the call, which the caller interprets
//! (see `torch.rs`). The one exception is `collections.OrderedDict()`, which becomes a plain
//! [`Value::Dict`] so that the items set on it land in it.
//!
//! The memo holds copies: a container filled after it was memoised reads back as it was
//! then. Checkpoints only re-read immutable things (class names, storage ids), so this is
//! fine for them and keeps the reader free of shared mutable state.

use std::collections::HashMap;

/// A decoded pickle value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Python's `None`.
    None,
    /// A `bool`.
    Bool(bool),
    /// An `int` that fits 64 bits.
    Int(i64),
    /// An integer too wide for `i64`, as little-endian two's-complement bytes.
    Long(Vec<u8>),
    /// A `float`.
    Float(f64),
    /// A `str`.
    Str(String),
    /// A `bytes`.
    Bytes(Vec<u8>),
    /// A `tuple`.
    Tuple(Vec<Value>),
    /// A `list`.
    List(Vec<Value>),
    /// A `dict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A class or function reference: `module`, `name`.
    Global(String, String),
    /// The result of calling `class` with `args` (a tuple), and the state `BUILD` gave it.
    Object {
        /// The class or function called.
        class: Box<Value>,
        /// Its arguments.
        args: Box<Value>,
        /// The state `BUILD` set.
        state: Option<Box<Value>>,
    },
    /// A persistent id: how PyTorch refers to tensor storages kept outside the pickle.
    Persistent(Box<Value>),
}

impl Value {
    /// The text of a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value of an `int` (or a `bool`).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The items of a tuple or a list.
    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// `module.name` of a global, for messages and matching.
    pub fn global_name(&self) -> Option<String> {
        match self {
            Value::Global(m, n) => Some(format!("{m}.{n}")),
            _ => None,
        }
    }
}

/// Why a pickle could not be read; `at` is the byte offset in the stream.
#[derive(Debug, thiserror::Error)]
#[error("pickle at byte {at}: {reason}")]
pub struct PickleError {
    /// Byte offset in the stream.
    pub at: usize,
    /// What is wrong there.
    pub reason: String,
}

/// Reads one pickle after another from a byte buffer (PyTorch's legacy format is five
/// pickles in a row followed by raw storage bytes).
pub struct Unpickler<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Unpickler<'a> {
    /// Reads from the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Unpickler { bytes, pos: 0 }
    }

    /// The byte offset just after the last pickle read.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn fail<T>(&self, reason: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError { at: self.pos, reason: reason.into() })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        match self.bytes.get(self.pos..self.pos.saturating_add(n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => self.fail(format!("the stream ends inside a value (wanted {n} more bytes)")),
        }
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.bytes[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return self.fail("unterminated text line");
        };
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(text)
    }

    fn utf8(&mut self, n: usize) -> Result<Value, PickleError> {
        let raw = self.take(n)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(Value::Str(s.to_string())),
            Err(_) => self.fail("a string that is not UTF-8"),
        }
    }

    /// Reads the next pickle, up to and including its `STOP`.
    pub fn load(&mut self) -> Result<Value, PickleError> {
        let mut stack: Vec<Value> = Vec::new();
        let mut marks: Vec<usize> = Vec::new();
        let mut memo: HashMap<u32, Value> = HashMap::new();
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return self.fail(format!("pickle protocol {proto} is newer than this reader"));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint
                }
                b'.' => {
                    return match stack.pop() {
                        Some(v) => Ok(v),
                        None => self.fail("STOP with an empty stack"),
                    };
                }
                b'(' => marks.push(stack.len()),
                b')' => stack.push(Value::Tuple(Vec::new())),
                b']' => stack.push(Value::List(Vec::new())),
                b'}' => stack.push(Value::Dict(Vec::new())),
                b'N' => stack.push(Value::None),
                0x88 => stack.push(Value::Bool(true)),
                0x89 => stack.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.take(4)?.try_into().unwrap());
                    stack.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    stack.push(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.u8()? as usize } else { self.u32()? as usize };
                    let raw = self.take(n)?.to_vec();
                    stack.push(long(raw));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                    stack.push(Value::Float(v));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.utf8(n)?;
                    stack.push(v);
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.utf8(n)?;
                    stack.push(v);
                }
                b'T' | b'B' => {
                    let n = self.u32()? as usize;
                    stack.push(Value::Bytes(self.take(n)?.to_vec()));
                }
                b'U' | b'C' => {
                    let n = self.u8()? as usize;
                    stack.push(Value::Bytes(self.take(n)?.to_vec()));
                }
                b't' | b'l' | b'd' => {
                    let items = self.pop_mark(&mut stack, &mut marks)?;
                    stack.push(match op {
                        b't' => Value::Tuple(items),
                        b'l' => Value::List(items),
                        _ => Value::Dict(pairs(items)),
                    });
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if stack.len() < n {
                        return self.fail("TUPLE with too few items on the stack");
                    }
                    let items = stack.split_off(stack.len() - n);
                    stack.push(Value::Tuple(items));
                }
                b'a' => {
                    let item = self.pop(&mut stack)?;
                    self.extend_list(&mut stack, vec![item])?;
                }
                b'e' => {
                    let items = self.pop_mark(&mut stack, &mut marks)?;
                    self.extend_list(&mut stack, items)?;
                }
                b's' => {
                    let value = self.pop(&mut stack)?;
                    let key = self.pop(&mut stack)?;
                    self.extend_dict(&mut stack, vec![key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark(&mut stack, &mut marks)?;
                    self.extend_dict(&mut stack, items)?;
                }
                b'q' | b'r' | 0x94 => {
                    let id = match op {
                        b'q' => self.u8()? as u32,
                        b'r' => self.u32()?,
                        _ => memo.len() as u32,
                    };
                    match stack.last() {
                        Some(v) => memo.insert(id, v.clone()),
                        None => return self.fail("PUT with an empty stack"),
                    };
                }
                b'h' | b'j' => {
                    let id = if op == b'h' { self.u8()? as u32 } else { self.u32()? };
                    match memo.get(&id) {
                        Some(v) => stack.push(v.clone()),
                        None => return self.fail(format!("GET of memo {id}, which was never PUT")),
                    }
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    stack.push(Value::Global(module, name));
                }
                0x93 => {
                    let name = self.pop(&mut stack)?;
                    let module = self.pop(&mut stack)?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => stack.push(Value::Global(m, n)),
                        _ => return self.fail("STACK_GLOBAL on values that are not strings"),
                    }
                }
                b'R' | 0x81 => {
                    let args = self.pop(&mut stack)?;
                    let class = self.pop(&mut stack)?;
                    stack.push(call(class, args));
                }
                b'b' => {
                    let state = self.pop(&mut stack)?;
                    match stack.last_mut() {
                        // an OrderedDict's state is its attributes (`_metadata`): not items
                        Some(Value::Dict(_)) => {}
                        Some(Value::Object { state: slot, .. }) => *slot = Some(Box::new(state)),
                        _ => return self.fail("BUILD on something that is not an object"),
                    }
                }
                b'Q' => {
                    let pid = self.pop(&mut stack)?;
                    stack.push(Value::Persistent(Box::new(pid)));
                }
                b'0' => {
                    self.pop(&mut stack)?;
                }
                b'1' => {
                    self.pop_mark(&mut stack, &mut marks)?;
                }
                b'2' => {
                    let top = self.pop(&mut stack)?;
                    stack.push(top.clone());
                    stack.push(top);
                }
                other => return self.fail(format!("opcode 0x{other:02x} is not supported")),
            }
        }
    }

    fn pop(&self, stack: &mut Vec<Value>) -> Result<Value, PickleError> {
        match stack.pop() {
            Some(v) => Ok(v),
            None => self.fail("an opcode needs a value but the stack is empty"),
        }
    }

    fn pop_mark(&self, stack: &mut Vec<Value>, marks: &mut Vec<usize>) -> Result<Vec<Value>, PickleError> {
        match marks.pop() {
            Some(at) if at <= stack.len() => Ok(stack.split_off(at)),
            _ => self.fail("an opcode needs a MARK but there is none"),
        }
    }

    fn extend_list(&self, stack: &mut [Value], items: Vec<Value>) -> Result<(), PickleError> {
        match stack.last_mut() {
            Some(Value::List(list)) => {
                list.extend(items);
                Ok(())
            }
            _ => self.fail("APPEND to something that is not a list"),
        }
    }

    fn extend_dict(&self, stack: &mut [Value], items: Vec<Value>) -> Result<(), PickleError> {
        match stack.last_mut() {
            Some(Value::Dict(dict)) => {
                dict.extend(pairs(items));
                Ok(())
            }
            _ => self.fail("SETITEM on something that is not a dict"),
        }
    }
}

/// `[k0, v0, k1, v1, ...]` → `[(k0, v0), ...]`.
fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

/// `LONG1`/`LONG4` bytes: an `Int` when they fit in 64 bits.
fn long(raw: Vec<u8>) -> Value {
    if raw.is_empty() {
        return Value::Int(0);
    }
    if raw.len() <= 8 {
        let fill = if raw[raw.len() - 1] & 0x80 != 0 { 0xff } else { 0 };
        let mut b = [fill; 8];
        b[..raw.len()].copy_from_slice(&raw);
        return Value::Int(i64::from_le_bytes(b));
    }
    Value::Long(raw)
}

/// A call recorded as an object; `OrderedDict()` becomes a dict to fill.
fn call(class: Value, args: Value) -> Value {
    let empty_args = matches!(&args, Value::Tuple(a) if a.is_empty());
    if empty_args && class.global_name().as_deref() == Some("collections.OrderedDict") {
        return Value::Dict(Vec::new());
    }
    Value::Object { class: Box::new(class), args: Box::new(args), state: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pickle.dumps(OrderedDict(a=(1, -2, 2**70, 1.5, 'é', b'x'), b=[None, True]), protocol=2)`.
    const ORDERED: &[u8] = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00aq\x02(K\x01J\xfe\xff\xff\xff\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@G?\xf8\x00\x00\x00\x00\x00\x00X\x02\x00\x00\x00\xc3\xa9q\x03c_codecs\nencode\nq\x04X\x01\x00\x00\x00xq\x05X\x06\x00\x00\x00latin1q\x06\x86q\x07Rq\x08tq\tX\x01\x00\x00\x00bq\n]q\x0b(N\x88eu.";

    #[test]
    fn reads_what_python_wrote() {
        let v = Unpickler::new(ORDERED).load().unwrap();
        let Value::Dict(items) = v else { panic!("not a dict: {v:?}") };
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].0, Value::Str("a".into()));
        let a = items[0].1.as_seq().unwrap();
        assert_eq!(a[0], Value::Int(1));
        assert_eq!(a[1], Value::Int(-2));
        let mut big = vec![0u8; 9];
        big[8] = 0x40; // 2**70 = 0x40 << 64
        assert_eq!(a[2], Value::Long(big));
        assert_eq!(a[3], Value::Float(1.5));
        assert_eq!(a[4], Value::Str("é".into()));
        // protocol 2 writes bytes as a call to _codecs.encode: kept as a recorded call
        assert!(
            matches!(&a[5], Value::Object { class, .. } if class.global_name().as_deref() == Some("_codecs.encode"))
        );
        assert_eq!(items[1].1, Value::List(vec![Value::None, Value::Bool(true)]));
    }

    #[test]
    fn damaged_pickles_are_errors_not_panics() {
        // every truncation of a valid pickle, and every single-byte opcode on its own
        for cut in 0..ORDERED.len() {
            assert!(Unpickler::new(&ORDERED[..cut]).load().is_err(), "cut at {cut}");
        }
        for op in 0..=255u8 {
            let _ = Unpickler::new(&[op, b'.']).load();
        }
        let err = Unpickler::new(b"\x80\x02h\x05.").load().unwrap_err();
        assert!(err.to_string().contains("memo 5"), "{err}");
    }
}
