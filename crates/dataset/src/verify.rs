//! `imgclf verify`: decode every image of a dataset before a long run, and move the ones
//! that cannot be read aside (never deleting them).

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::{Dataset, DatasetError, Sample};

/// A sample that does not decode, and why.
#[derive(Debug)]
pub struct Unreadable {
    /// The image that failed.
    pub sample: Sample,
    /// Why it cannot be read.
    pub error: DatasetError,
}

/// Decodes every sample of every split on the current rayon pool; `tick` is called once per
/// image (for a progress bar). The failures come back in dataset order.
pub fn verify(dataset: &Dataset, tick: &(dyn Fn() + Sync)) -> Vec<Unreadable> {
    let samples: Vec<&Sample> = dataset.splits.iter().flat_map(|s| &s.samples).collect();
    samples
        .par_iter()
        .filter_map(|s| {
            let result = s.load_rgb();
            tick();
            result.err().map(|error| Unreadable { sample: (*s).clone(), error })
        })
        .collect()
}

/// Moves each sample's file to `dest/<its path relative to the data root>`, keeping the
/// folder structure; a name already taken there gets a `.1`, `.2`, ... suffix. Returns where
/// each went. `dest` inside a split folder is refused: the files would be read again.
pub fn quarantine(dataset: &Dataset, samples: &[&Sample], dest: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    for split in &dataset.splits {
        let split_dir = dataset.root.join(&split.name);
        if absolute(dest).starts_with(absolute(&split_dir)) {
            return Err(DatasetError::Io {
                path: dest.to_path_buf(),
                error: std::io::Error::other(format!(
                    "the quarantine folder is inside the split folder {}, where its files would be read again",
                    split_dir.display()
                )),
            });
        }
    }
    if let Some(member) = samples.iter().find(|s| s.member.is_some()) {
        return Err(DatasetError::Io {
            path: member.path.clone(),
            error: std::io::Error::other("is a member of a tar, which is not moved apart"),
        });
    }
    let mut moved = Vec::with_capacity(samples.len());
    for s in samples {
        let mut target = dest.join(&s.rel);
        let mut n = 0;
        while target.symlink_metadata().is_ok() {
            n += 1;
            target = dest.join(format!("{}.{n}", s.rel));
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(DatasetError::io(parent))?;
        }
        move_file(&s.path, &target)?;
        moved.push(target);
    }
    Ok(moved)
}

/// `rename`, or copy-then-remove across file systems.
fn move_file(from: &Path, to: &Path) -> Result<(), DatasetError> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            std::fs::copy(from, to).map_err(DatasetError::io(to))?;
            std::fs::remove_file(from).map_err(DatasetError::io(from))
        }
        Err(e) => Err(DatasetError::Io { path: from.to_path_buf(), error: e }),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
