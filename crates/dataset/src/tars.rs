//! WebDataset tar shards as a source: `--data shards/` (a folder of `.tar` files) or
//! `--data 'shards/train-{000000..000099}.tar'` (WebDataset's brace notation). A sample is the
//! run of members that share a key (`0001.jpg`, `0001.cls`); its label is its `.cls`, `.txt`
//! or `.json` member. Only the headers are read to list them (and the small label members):
//! a photo's bytes are read in place when a stage needs them, never unpacked.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::containers::{class_index, class_name, files_in, split_of, unlabelled_among_labelled};
use crate::{Dataset, DatasetError, Member, Sample, Split, is_image_file};

/// Whether `data` names tar shards: a `.tar` file, a brace pattern of them, or a folder that
/// holds `.tar` files and no split folder.
pub fn is_tar_source(data: &Path) -> bool {
    let is_tar = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("tar"));
    if data.is_dir() {
        let splits = crate::SPLIT_NAMES.iter().any(|s| data.join(s).is_dir());
        return !splits && files_in(data, "tar").is_ok_and(|tars| !tars.is_empty());
    }
    is_tar(data)
}

/// The tars `data` names and the folder their identities start from.
fn tars_of(data: &Path) -> Result<(PathBuf, Vec<PathBuf>), DatasetError> {
    let fail = |reason: String| DatasetError::Manifest { path: data.to_path_buf(), reason };
    if data.is_dir() {
        return Ok((data.to_path_buf(), files_in(data, "tar")?));
    }
    let text = data.to_str().ok_or_else(|| fail("is not UTF-8".into()))?;
    let fixed = text.split('{').next().unwrap_or_default();
    let root = match fixed.rfind('/') {
        Some(slash) => PathBuf::from(&fixed[..slash.max(1)]),
        None => PathBuf::from("."),
    };
    let tars: Vec<PathBuf> = expand(text).map_err(fail)?.into_iter().map(PathBuf::from).collect();
    if let Some(missing) = tars.iter().find(|t| !t.is_file()) {
        return Err(fail(format!("names {} tars, and {} is not a file", tars.len(), missing.display())));
    }
    Ok((root, tars))
}

/// WebDataset's brace notation: `{000..099}` is a zero-padded range (as wide as its first
/// bound), `{a,b}` a list; several braces multiply.
fn expand(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('{') else { return Ok(vec![pattern.to_string()]) };
    let close = pattern[open..].find('}').ok_or("a `{` without its `}`")? + open;
    let inside = &pattern[open + 1..close];
    let choices: Vec<String> = match inside.split_once("..") {
        Some((from, to)) => {
            let bound = |b: &str| b.parse::<u64>().map_err(|_| format!("`{{{inside}}}`: `{b}` is not a number"));
            let (first, last) = (bound(from)?, bound(to)?);
            if first > last {
                return Err(format!("`{{{inside}}}` counts down"));
            }
            (first..=last).map(|n| format!("{n:0width$}", width = from.len())).collect()
        }
        None => inside.split(',').map(str::to_string).collect(),
    };
    let tails = expand(&pattern[close + 1..])?;
    Ok(choices.iter().flat_map(|c| tails.iter().map(move |t| format!("{}{c}{t}", &pattern[..open]))).collect())
}

/// A sample as listed, before class ids: its key, the members that make it, its label text.
struct Listed {
    key: String,
    images: Vec<(String, u64, u64)>,
    label: Option<String>,
    fault: Option<String>,
}

/// Opens tar shards: each split's samples in the order of its tars and of their members.
/// Refused before any photo is read: no tars, a label member that is not text, a split partly
/// labelled, a key that comes back later in the same tar. A tar cut short ends with a sample
/// that says so (skipped and named when read); the other tars go on.
pub(crate) fn open(data: &Path) -> Result<Dataset, DatasetError> {
    let (root, tars) = tars_of(data)?;
    if tars.is_empty() {
        return Err(DatasetError::Manifest { path: data.to_path_buf(), reason: "holds no .tar files".into() });
    }
    let mut listed: Vec<(&'static str, Arc<Path>, Vec<Listed>)> = Vec::new();
    for tar in &tars {
        listed.push((split_of(tar), Arc::from(tar.as_path()), list(tar)?));
    }
    let labels = listed.iter().flat_map(|(_, _, samples)| samples.iter().filter_map(|s| s.label.clone()));
    let classes = class_index(labels.collect());
    let mut splits: Vec<Split> = Vec::new();
    for name in crate::SPLIT_NAMES {
        let mut samples = Vec::new();
        for (_, tar, listed) in listed.iter().filter(|(split, ..)| *split == name) {
            let rel_tar = tar.strip_prefix(&root).unwrap_or(tar).to_string_lossy().replace('\\', "/");
            for s in listed {
                let label = s.label.as_deref().map(|l| classes.id(&class_name(l, &classes)).expect("listed above"));
                let member = match (&s.fault, s.images.as_slice()) {
                    (None, [(_, offset, len)]) => Member::Bytes { tar: tar.clone(), offset: *offset, len: *len },
                    (fault, images) => {
                        let reason = fault.clone().unwrap_or_else(|| match images.len() {
                            0 => "a sample without an image member (.jpg, .png, ...)".into(),
                            n => format!("a sample with {n} image members; keep one"),
                        });
                        Member::Fault { tar: tar.clone(), reason }
                    }
                };
                // errors name the image member, or the key where there is none
                let path = tar.join(s.images.first().map_or(&s.key, |(name, ..)| name));
                samples.push(Sample { path, rel: format!("{rel_tar}/{}", s.key), label, member: Some(member) });
            }
        }
        if samples.is_empty() {
            continue;
        }
        if let Some(odd) = unlabelled_among_labelled(&samples) {
            return Err(DatasetError::Manifest {
                path: odd.container().to_path_buf(),
                reason: format!(
                    "sample `{}` has no label (.cls, .txt or .json) where others of split `{name}` have one",
                    odd.rel
                ),
            });
        }
        splits.push(Split { name: name.to_string(), samples });
    }
    Ok(Dataset { root, source: data.to_path_buf(), classes, splits })
}

/// The samples of one tar, from its headers: consecutive members with one key are a sample.
fn list(tar: &Path) -> Result<Vec<Listed>, DatasetError> {
    let fail = |reason: String| DatasetError::Manifest { path: tar.to_path_buf(), reason };
    let file = File::open(tar).map_err(DatasetError::io(tar))?;
    let size = file.metadata().map_err(DatasetError::io(tar))?.len();
    let mut archive = tar::Archive::new(file);
    let mut samples: Vec<Listed> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let entries = archive.entries_with_seek().map_err(DatasetError::io(tar))?;
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                cut_short(&mut samples, &format!("its headers stop making sense ({e})"));
                break;
            }
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let (dir, base) = name.rsplit_once('/').map_or(("", name.as_str()), |(d, b)| (d, b));
        let Some((stem, ext)) = base.split_once('.') else { continue };
        let key = if dir.is_empty() { stem.to_string() } else { format!("{dir}/{stem}") };
        let (offset, len) = (entry.raw_file_position(), entry.size());
        if samples.last().is_none_or(|s| s.key != key) {
            if !seen.insert(key.clone()) {
                return Err(fail(format!(
                    "key `{key}` comes back after other samples: a sample's members must be together"
                )));
            }
            samples.push(Listed { key, images: Vec::new(), label: None, fault: None });
        }
        let sample = samples.last_mut().expect("pushed above");
        let ext = ext.to_ascii_lowercase();
        let image = !ext.contains('.') && is_image_file(Path::new(base));
        if image {
            sample.images.push((name.clone(), offset, len));
        }
        if offset + len > size {
            cut_short(&mut samples, &format!("it ends inside `{name}`"));
            break;
        }
        if image {
        } else if matches!(ext.as_str(), "cls" | "txt" | "json") && sample.label.is_none() {
            let mut text = String::new();
            entry.by_ref().take(1 << 16).read_to_string(&mut text).map_err(|e| fail(format!("`{name}`: {e}")))?;
            sample.label = label_of(&ext, &text).map_err(|e| fail(format!("`{name}`: {e}")))?;
        }
    }
    Ok(samples)
}

/// Marks the tar's last sample as cut short (or adds one that says so): the rest is skipped.
fn cut_short(samples: &mut Vec<Listed>, why: &str) {
    let reason = format!("the tar is cut short ({why}); the rest of it is skipped");
    match samples.last_mut() {
        Some(last) => last.fault = Some(reason),
        None => {
            samples.push(Listed { key: "(cut short)".into(), images: Vec::new(), label: None, fault: Some(reason) })
        }
    }
}

/// A label member's class: the text of a `.cls` or `.txt`, or a `.json` object's `label` or
/// `class` (a name or a number); none when empty.
fn label_of(ext: &str, text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if ext != "json" {
        return Ok(Some(text.to_string()).filter(|t| !t.is_empty()));
    }
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON object ({e})"))?;
    Ok(match object.get("label").or_else(|| object.get("class")) {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `members` (name, bytes) at `path`.
    fn tar(path: &Path, members: &[(&str, &[u8])]) {
        let mut builder = tar::Builder::new(File::create(path).unwrap());
        for (name, bytes) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *bytes).unwrap();
        }
        builder.finish().unwrap();
    }

    #[test]
    fn samples_are_keys_labelled_by_their_members_and_read_in_place() {
        let t = tempfile::tempdir().unwrap();
        tar(
            &t.path().join("train-0.tar"),
            &[("a.cls", b"1"), ("a.jpg", b"AAA"), ("d/b.json", b"{\"label\": 0}"), ("d/b.png", b"BB")],
        );
        tar(&t.path().join("test-0.tar"), &[("c.jpg", b"C")]);
        let ds = Dataset::open(t.path()).unwrap();
        assert_eq!(ds.classes.names(), ["0", "1"]);
        let train = &ds.splits[0].samples;
        let rels: Vec<&str> = train.iter().map(|s| s.rel.as_str()).collect();
        assert_eq!(rels, ["train-0.tar/a", "train-0.tar/d/b"]);
        assert_eq!(train.iter().map(|s| s.label).collect::<Vec<_>>(), [Some(1), Some(0)]);
        assert_eq!(train[0].read().unwrap(), b"AAA");
        assert_eq!(train[1].read().unwrap(), b"BB");
        assert_eq!(train[1].path, t.path().join("train-0.tar/d/b.png"));
        assert_eq!(ds.splits[1].name, "test");
        assert_eq!(ds.splits[1].samples[0].label, None);
    }

    #[test]
    fn braces_expand_as_webdataset_writes_them() {
        assert_eq!(expand("s-{08..10}.tar").unwrap(), ["s-08.tar", "s-09.tar", "s-10.tar"]);
        assert_eq!(expand("{a,b}-{0..1}.tar").unwrap(), ["a-0.tar", "a-1.tar", "b-0.tar", "b-1.tar"]);
        assert!(expand("s-{3..1}.tar").unwrap_err().contains("counts down"));
        assert!(expand("s-{x..1}.tar").unwrap_err().contains("`x` is not a number"));
        assert_eq!(split_of(Path::new("a/val_003.tar")), "validation");
        assert_eq!(split_of(Path::new("shard-003.tar")), "train");
    }
}
