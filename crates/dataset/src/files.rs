//! Files and folders that appear whole: written under a hidden sibling name and renamed into
//! place, so an interrupted run leaves the earlier file (or none), never half of one. The
//! sibling is `.NAME.TAG-PID`; siblings that a killed process (SIGKILL, power loss) left are
//! removed by the next run that writes the same target.

use std::io;
use std::path::{Path, PathBuf};

/// This process's staging path for `target` (`.NAME.TAG-PID` beside it), after removing the
/// files or folders that processes no longer running left under the same tag.
pub fn staging_path(target: &Path, tag: &str) -> PathBuf {
    let name = target.file_name().map_or("file".into(), |n| n.to_string_lossy().into_owned());
    let prefix = format!(".{name}.{tag}-");
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let pid = file.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            let path = entry.path();
            let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        }
    }
    dir.join(format!("{prefix}{}", std::process::id()))
}

/// A file being written beside its target (`.NAME.tmp-PID`), removed on drop unless
/// [`TempFile::persist`] renamed it into place.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    target: PathBuf,
}

impl TempFile {
    /// A temporary file for `target`, in the same folder (so the rename is atomic).
    pub fn beside(target: &Path) -> TempFile {
        TempFile { path: staging_path(target, "tmp"), target: target.to_path_buf() }
    }

    /// Where to write.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the file into place, replacing the target.
    pub fn persist(self) -> io::Result<()> {
        std::fs::rename(&self.path, &self.target)
        // dropped here: removing the moved path finds nothing
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `bytes` to `path` through a [`TempFile`]: the old content or the new, never half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = TempFile::beside(path);
    std::fs::write(tmp.path(), bytes)?;
    tmp.persist()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_whole_and_leftovers_of_dead_processes_are_swept() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("a.txt");
        // pid 0 is never a process with a /proc entry: a leftover of a killed run
        let stale = t.path().join(".a.txt.tmp-0");
        std::fs::write(&stale, b"half").unwrap();
        let stale_dir = t.path().join(".a.txt.partial-0");
        std::fs::create_dir(&stale_dir).unwrap();
        write_atomic(&target, b"one").unwrap();
        write_atomic(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        assert!(!stale.exists(), "a dead process's temporary file is removed");
        assert!(stale_dir.exists(), "another tag is left alone");
        staging_path(&target, "partial");
        assert!(!stale_dir.exists(), "and swept by its own tag");
        let names: Vec<_> = std::fs::read_dir(t.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["a.txt"]);
    }

    #[test]
    fn a_dropped_temp_file_leaves_the_target_as_it_was() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("a.txt");
        std::fs::write(&target, b"old").unwrap();
        let tmp = TempFile::beside(&target);
        std::fs::write(tmp.path(), b"new, unfinished").unwrap();
        drop(tmp);
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }
}
