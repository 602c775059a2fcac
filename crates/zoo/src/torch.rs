//! PyTorch checkpoints in the legacy (pre-1.6, non-zip) `torch.save` format: five pickles
//! (magic number, protocol version, system info, the object, the storage keys), then each
//! storage's element count and raw little-endian bytes in key order.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::ZooError;
use crate::pickle::{Unpickler, Value};

/// `torch.save`'s legacy magic number 0x1950a86a20f9469cfc6c, little-endian.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const PROTOCOL_VERSION: i64 = 1001;

/// A float tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// The float tensors of a state dict by name. Integer buffers (BatchNorm's
/// `num_batches_tracked`) are left out: nothing downstream needs them.
#[derive(Debug, Clone, Default)]
pub struct StateDict {
    /// The tensors by name.
    pub tensors: BTreeMap<String, Tensor>,
}

impl StateDict {
    /// Reads a checkpoint file.
    pub fn load(path: &Path) -> Result<StateDict, ZooError> {
        let bytes = std::fs::read(path).map_err(|e| ZooError::io(path, e))?;
        Self::parse(&bytes).map_err(|reason| ZooError::Checkpoint { path: path.to_path_buf(), reason })
    }

    /// Parses checkpoint bytes; the error says what is wrong with them.
    pub fn parse(bytes: &[u8]) -> Result<StateDict, String> {
        if bytes.starts_with(b"PK\x03\x04") {
            return Err("a zip-format checkpoint (torch >= 1.6); only the legacy format is read".into());
        }
        let mut p = Unpickler::new(bytes);
        let e = |e: crate::pickle::PickleError| e.to_string();
        if p.load().map_err(e)? != Value::Long(MAGIC.to_vec()) {
            return Err("not a torch.save file (no legacy magic number)".into());
        }
        let version = p.load().map_err(e)?;
        if version.as_int() != Some(PROTOCOL_VERSION) {
            return Err(format!("torch.save protocol {version:?}, expected {PROTOCOL_VERSION}"));
        }
        let _system_info = p.load().map_err(e)?;
        let root = p.load().map_err(e)?;
        let keys = p.load().map_err(e)?;
        let keys: Vec<&str> = keys
            .as_seq()
            .and_then(|k| k.iter().map(Value::as_str).collect())
            .ok_or("the storage key list is not a list of strings")?;

        let mut entries = Vec::new();
        collect_tensors(state_dict_of(&root)?, &mut entries)?;
        let kinds: HashMap<&str, &StorageRef> =
            entries.iter().map(|(_, t)| (t.storage.key.as_str(), &t.storage)).collect();

        // the storages follow the pickles: u64 element count, then the elements
        let mut pos = p.position();
        let mut storages: HashMap<&str, Vec<f32>> = HashMap::new();
        for key in keys {
            let storage = kinds.get(key).ok_or_else(|| format!("storage {key} is stored but no tensor uses it"))?;
            let (width, float32) = storage.kind()?;
            let count_bytes = bytes.get(pos..pos + 8).ok_or_else(|| format!("the file ends before storage {key}"))?;
            let count = u64::from_le_bytes(count_bytes.try_into().unwrap()) as usize;
            pos += 8;
            let len = count.checked_mul(width).ok_or("a storage size overflows")?;
            let raw = bytes.get(pos..pos + len).ok_or_else(|| format!("the file ends inside storage {key}"))?;
            pos += len;
            if float32 {
                storages.insert(key, raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect());
            }
        }

        let mut tensors = BTreeMap::new();
        for (name, t) in entries {
            if !t.storage.kind()?.1 {
                continue;
            }
            let storage = storages
                .get(t.storage.key.as_str())
                .ok_or_else(|| format!("{name}: storage {} is not in the file", t.storage.key))?;
            tensors.insert(name.clone(), t.gather(storage).map_err(|r| format!("{name}: {r}"))?);
        }
        Ok(StateDict { tensors })
    }

    /// A tensor by name, with the shape the caller expects.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&Tensor, String> {
        let t = self.tensors.get(name).ok_or_else(|| format!("the checkpoint has no tensor `{name}`"))?;
        if t.shape != shape {
            return Err(format!("`{name}` has shape {:?}, expected {shape:?}", t.shape));
        }
        Ok(t)
    }
}

/// The dict of tensors: the root itself, or its `state_dict` entry.
fn state_dict_of(root: &Value) -> Result<&[(Value, Value)], String> {
    let Value::Dict(items) = root else { return Err("the checkpoint does not hold a dict".into()) };
    for (k, v) in items {
        if k.as_str() == Some("state_dict")
            && let Value::Dict(inner) = v
        {
            return Ok(inner);
        }
    }
    Ok(items)
}

/// `('storage', torch.FloatStorage, key, location, numel)` from a persistent id.
struct StorageRef {
    class: String,
    key: String,
    numel: usize,
}

impl StorageRef {
    /// Bytes per element, and whether it is float32 (the one kind loaded). Integer buffers
    /// are stepped over; other float kinds are refused rather than silently left out.
    fn kind(&self) -> Result<(usize, bool), String> {
        match self.class.as_str() {
            "torch.FloatStorage" => Ok((4, true)),
            "torch.LongStorage" => Ok((8, false)),
            "torch.IntStorage" => Ok((4, false)),
            "torch.ShortStorage" => Ok((2, false)),
            "torch.CharStorage" | "torch.ByteStorage" | "torch.BoolStorage" => Ok((1, false)),
            other => Err(format!("storage type {other} is not supported (float32 and integer buffers only)")),
        }
    }
}

/// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`.
struct TensorRef {
    storage: StorageRef,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

impl TensorRef {
    /// Copies the (possibly strided) view out of its storage into row-major order.
    fn gather(&self, storage: &[f32]) -> Result<Tensor, String> {
        if storage.len() != self.storage.numel {
            return Err(format!("storage holds {} elements, its id says {}", storage.len(), self.storage.numel));
        }
        let count: usize = self.shape.iter().product();
        let last = self.shape.iter().zip(&self.stride).map(|(&n, &s)| n.saturating_sub(1) * s).sum::<usize>();
        if count > 0 && self.offset + last >= storage.len() {
            return Err("the view reaches past its storage".into());
        }
        let mut data = Vec::with_capacity(count);
        let mut index = vec![0usize; self.shape.len()];
        for _ in 0..count {
            let at: usize = self.offset + index.iter().zip(&self.stride).map(|(i, s)| i * s).sum::<usize>();
            data.push(storage[at]);
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < self.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok(Tensor { shape: self.shape.clone(), data })
    }
}

fn collect_tensors(items: &[(Value, Value)], out: &mut Vec<(String, TensorRef)>) -> Result<(), String> {
    for (k, v) in items {
        let name = k.as_str().ok_or("a state dict key that is not a string")?;
        out.push((name.to_string(), tensor_ref(v).map_err(|r| format!("{name}: {r}"))?));
    }
    Ok(())
}

fn tensor_ref(v: &Value) -> Result<TensorRef, String> {
    let Value::Object { class, args, .. } = v else { return Err("not a tensor".into()) };
    let rebuild = class.global_name().unwrap_or_default();
    if rebuild != "torch._utils._rebuild_tensor_v2" && rebuild != "torch._utils._rebuild_tensor" {
        return Err(format!("built by {rebuild}, not a plain tensor"));
    }
    let args = args.as_seq().ok_or("rebuild arguments are not a tuple")?;
    let [Value::Persistent(pid), offset, size, stride, ..] = args else {
        return Err("rebuild arguments do not start with a storage".into());
    };
    let pid = pid.as_seq().ok_or("storage id is not a tuple")?;
    let [tag, class, key, _location, numel, ..] = pid else { return Err("short storage id".into()) };
    if tag.as_str() != Some("storage") {
        return Err(format!("persistent id {tag:?} is not a storage"));
    }
    let dims = |v: &Value| -> Option<Vec<usize>> {
        v.as_seq()?.iter().map(|d| d.as_int().and_then(|d| usize::try_from(d).ok())).collect()
    };
    let storage = StorageRef {
        class: class.global_name().ok_or("storage type is not a class")?,
        key: key.as_str().ok_or("storage key is not a string")?.to_string(),
        numel: numel.as_int().and_then(|n| usize::try_from(n).ok()).ok_or("bad storage size")?,
    };
    let shape = dims(size).ok_or("bad tensor size")?;
    let stride = dims(stride).ok_or("bad tensor stride")?;
    if shape.len() != stride.len() {
        return Err("size and stride differ in length".into());
    }
    let offset = offset.as_int().and_then(|o| usize::try_from(o).ok()).ok_or("bad storage offset")?;
    Ok(TensorRef { storage, offset, shape, stride })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(n: usize) -> StorageRef {
        StorageRef { class: "torch.FloatStorage".into(), key: "0".into(), numel: n }
    }

    #[test]
    fn strided_views_come_out_row_major() {
        // a 2x3 tensor stored column-major (stride (1, 2)), as the TF-converted weights are
        let view = TensorRef { storage: storage(6), offset: 0, shape: vec![2, 3], stride: vec![1, 2] };
        let t = view.gather(&[0., 3., 1., 4., 2., 5.]).unwrap();
        assert_eq!(t.data, vec![0., 1., 2., 3., 4., 5.]);
        // an offset view and a scalar
        let view = TensorRef { storage: storage(4), offset: 1, shape: vec![3], stride: vec![1] };
        assert_eq!(view.gather(&[9., 1., 2., 3.]).unwrap().data, vec![1., 2., 3.]);
        let scalar = TensorRef { storage: storage(1), offset: 0, shape: vec![], stride: vec![] };
        assert_eq!(scalar.gather(&[7.]).unwrap().data, vec![7.]);
    }

    #[test]
    fn views_past_their_storage_are_refused() {
        let view = TensorRef { storage: storage(4), offset: 2, shape: vec![3], stride: vec![1] };
        assert!(view.gather(&[0.; 4]).unwrap_err().contains("past its storage"));
        let view = TensorRef { storage: storage(5), offset: 0, shape: vec![2], stride: vec![1] };
        assert!(view.gather(&[0.; 4]).unwrap_err().contains("its id says 5"));
    }

    #[test]
    fn other_files_are_named_for_what_they_are() {
        assert!(StateDict::parse(b"PK\x03\x04rest").unwrap_err().contains("zip-format"));
        assert!(StateDict::parse(b"\x80\x02K\x01.").unwrap_err().contains("magic"));
        assert!(StateDict::parse(b"").is_err());
    }
}
