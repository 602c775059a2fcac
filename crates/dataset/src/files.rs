//! Files and folders that appear whole: written under a hidden sibling name and renamed into
//! place, so an interrupted run leaves the earlier file (or none), never half of one. The
//! sibling is `.NAME.TAG-PID`; siblings that a killed process (SIGKILL, power loss) left are
//! removed by the next run that writes the same target.

use std::io::{self, Read as _, Write as _};
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
    staged(path, bytes)?.persist()
}

/// `bytes` written to a [`TempFile`] beside `path`, not yet renamed into place.
fn staged(path: &Path, bytes: &[u8]) -> io::Result<TempFile> {
    let tmp = TempFile::beside(path);
    std::fs::write(tmp.path(), bytes)?;
    Ok(tmp)
}

/// The most a run's own text file (`run.json`, `history.csv`, a part's record) may hold: far
/// above what imgclf writes, far below what would stall a reader.
pub const TEXT_FILE_LIMIT: u64 = 64 << 20;

/// Reads a small text file imgclf wrote, refusing what is not one: a FIFO or a device (which
/// would block or never end), a folder, or a file over `limit` bytes. The error says which.
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "a folder" } else { "not a plain file (a FIFO or a device?)" };
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("is {what}")));
    }
    if meta.len() > limit {
        let why = format!("holds {} bytes, more than the {limit} a file imgclf writes there holds", meta.len());
        return Err(io::Error::new(io::ErrorKind::InvalidData, why));
    }
    let mut text = String::new();
    std::fs::File::open(path)?.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("holds more than {limit} bytes")));
    }
    Ok(text)
}

/// The mark a picture imgclf writes carries near its start: a PNG `tEXt` chunk or a JPEG
/// comment, `Software` = `imgclf` (see [`encode_marked`]). How an output flag tells its own
/// earlier picture from one it must not replace.
pub const IMAGE_MARK: &[u8] = b"Software\0imgclf";

/// `image` encoded as `format`, carrying [`IMAGE_MARK`] where the format has room for it (PNG,
/// JPEG); other formats are written plain (and so are replaced only with `--force`).
pub fn encode_marked(image: &image::RgbImage, format: image::ImageFormat) -> image::ImageResult<Vec<u8>> {
    let mut bytes = io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, format)?;
    let mut bytes = bytes.into_inner();
    match format {
        // after the signature and IHDR (8 + 25 bytes): length, type, data, CRC of type and data
        image::ImageFormat::Png if bytes.len() > 33 => {
            let mut chunk = (IMAGE_MARK.len() as u32).to_be_bytes().to_vec();
            let body = [b"tEXt".as_slice(), IMAGE_MARK].concat();
            chunk.extend(&body);
            chunk.extend(crc32fast::hash(&body).to_be_bytes());
            bytes.splice(33..33, chunk);
        }
        // a COM segment right after SOI
        image::ImageFormat::Jpeg if bytes.len() > 2 => {
            let mut segment = vec![0xFF, 0xFE];
            segment.extend(((IMAGE_MARK.len() + 2) as u16).to_be_bytes());
            segment.extend(IMAGE_MARK);
            bytes.splice(2..2, segment);
        }
        _ => {}
    }
    Ok(bytes)
}

/// HDF5's signature: a feature file, never an output flag's to replace.
const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

/// The extended attribute [`write_output`] sets: the command whose output the file is.
const OUTPUT_ATTR: &str = "user.imgclf.output";

/// Writes an output flag's file whole ([`write_atomic`]), marked as the output of command
/// `tag` with an extended attribute where the file system keeps them (a CSV has no room for a
/// mark in its bytes); see [`check_output`].
pub fn write_output(path: &Path, bytes: &[u8], tag: &str) -> io::Result<()> {
    let (tmp, mut file) = staged_output(path, tag)?;
    file.write_all(bytes)?;
    tmp.persist()
}

/// An output flag's file to write in pieces: a [`TempFile`] beside `path`, already tagged as
/// command `tag`'s output, and the file open on it; [`TempFile::persist`] puts it in place,
/// dropping it leaves nothing.
pub fn staged_output(path: &Path, tag: &str) -> io::Result<(TempFile, std::fs::File)> {
    let tmp = TempFile::beside(path);
    let file = std::fs::File::create(tmp.path())?;
    // where extended attributes are not kept, the file is told by its content mark alone
    let _ = xattr::set(tmp.path(), OUTPUT_ATTR, tag.as_bytes());
    Ok((tmp, file))
}

/// Whether a command may write its output file at `path`: when nothing is there; when a plain
/// file is there that is the command's own earlier output (written by [`write_output`] with
/// `tag`, or carrying `mark` in its first 64 KB); or any other plain file when `force`. Never
/// over a folder, a FIFO or device, a feature file (HDF5), or an existing file of a run folder
/// (a folder holding `run.json`) that the command did not write. The reason names what is
/// there; the caller adds the flag.
pub fn check_output(path: &Path, tag: &str, mark: Option<&[u8]>, force: bool) -> Result<(), String> {
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot be checked ({e})")),
        Ok(meta) => meta,
    };
    if meta.is_dir() {
        return Err("is a folder: name a file".into());
    }
    if meta.file_type().is_symlink() {
        return match force {
            true => Ok(()),
            false => Err("is a link: --force replaces the link (not what it points to)".into()),
        };
    }
    if !meta.is_file() {
        return Err("is not a plain file (a FIFO or a device?)".into());
    }
    let mut head = Vec::with_capacity(64 << 10);
    std::fs::File::open(path)
        .and_then(|f| f.take(64 << 10).read_to_end(&mut head))
        .map_err(|e| format!("cannot be read ({e})"))?;
    if head.starts_with(HDF5_MAGIC) {
        return Err("is an HDF5 file (a feature file?): imgclf never writes over one; choose another path".into());
    }
    let ours = mark.is_some_and(|m| head.windows(m.len()).any(|w| w == m))
        || xattr::get(path, OUTPUT_ATTR).ok().flatten().is_some_and(|t| t == tag.as_bytes());
    if ours {
        return Ok(());
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if dir.join("run.json").is_file() {
        return Err(format!(
            "is a file of the run folder {}: imgclf never writes over a run's own files; choose another path",
            dir.display()
        ));
    }
    match force {
        true => Ok(()),
        false => Err("exists and is not this command's earlier output: --force replaces it".into()),
    }
}

/// Held while a process writes one output (a feature file, a shard): `.NAME.lock` beside it,
/// locked with `flock`, holding the writer's process id. A second writer of the same output is
/// refused with that id instead of racing the first; the lock goes with the process, whatever
/// ends it, and the file is removed when the writer finishes.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    _file: std::fs::File,
}

/// Another process holds an output's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The lock file.
    pub lock: PathBuf,
    /// The process holding it, as it wrote itself there (None while it starts).
    pub pid: Option<u32>,
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "another imgclf (process {pid}) is writing it"),
            None => write!(f, "another imgclf is writing it"),
        }
        .and_then(|()| write!(f, " (lock {}): wait for it to finish, or stop it", self.lock.display()))
    }
}

impl OutputLock {
    /// The lock file of `target`.
    pub fn path_of(target: &Path) -> PathBuf {
        let name = target.file_name().map_or("output".into(), |n| n.to_string_lossy().into_owned());
        target.parent().unwrap_or(Path::new(".")).join(format!(".{name}.lock"))
    }

    /// Takes `target`'s lock, or says who holds it (`Ok(Err(held))`). A lock held for a
    /// moment ([`OutputLock::holder`] looking) is waited for, up to a fifth of a second.
    pub fn take(target: &Path) -> io::Result<Result<OutputLock, Held>> {
        use std::os::unix::fs::MetadataExt as _;
        let path = Self::path_of(target);
        let mut tries = 0;
        loop {
            let file = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) if tries < 10 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    continue;
                }
                Err(std::fs::TryLockError::WouldBlock) => return Ok(Err(Held { pid: pid_in(&path), lock: path })),
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            // the holder before us may have removed the file after we opened it: lock the file
            // that is at the path now
            let same = std::fs::metadata(&path)
                .is_ok_and(|m| file.metadata().is_ok_and(|mine| (mine.dev(), mine.ino()) == (m.dev(), m.ino())));
            if same {
                file.set_len(0)?;
                (&file).write_all(std::process::id().to_string().as_bytes())?;
                return Ok(Ok(OutputLock { path, _file: file }));
            }
        }
    }

    /// Whether a process holds `target`'s lock now, and which.
    pub fn holder(target: &Path) -> Option<Held> {
        let path = Self::path_of(target);
        let file = std::fs::File::open(&path).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(_) => Some(Held { pid: pid_in(&path), lock: path }),
        }
    }
}

/// The process id a lock file holds.
fn pid_in(lock: &Path) -> Option<u32> {
    std::fs::read_to_string(lock).ok()?.trim().parse().ok()
}

impl Drop for OutputLock {
    /// Removes the lock file while still holding the lock: a process that opened it meanwhile
    /// finds it gone and takes a fresh one.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
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

    #[test]
    fn small_text_files_refuse_fifos_devices_and_giants() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("run.json");
        std::fs::write(&file, "{}").unwrap();
        assert_eq!(read_text(&file, 10).unwrap(), "{}");
        assert!(read_text(&file, 1).unwrap_err().to_string().contains("more than the 1"));
        assert!(read_text(Path::new("/dev/zero"), TEXT_FILE_LIMIT).unwrap_err().to_string().contains("FIFO"));
        let fifo = t.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        // a FIFO nobody writes to would block a plain read for ever
        assert!(read_text(&fifo, TEXT_FILE_LIMIT).unwrap_err().to_string().contains("not a plain file"));
        assert!(read_text(t.path(), TEXT_FILE_LIMIT).unwrap_err().to_string().contains("a folder"));
    }

    #[test]
    fn outputs_replace_only_their_own_files_unless_forced_and_never_a_runs() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        const MARK: &[u8] = b"<meta name=\"generator\" content=\"imgclf\">";
        let page = d.join("page.html");
        assert_eq!(check_output(&page, "report", Some(MARK), false), Ok(()), "nothing there");
        std::fs::write(&page, MARK).unwrap();
        assert_eq!(check_output(&page, "report", Some(MARK), false), Ok(()), "our own earlier page");
        std::fs::write(&page, "notes").unwrap();
        assert!(check_output(&page, "report", Some(MARK), false).unwrap_err().contains("--force"));
        assert_eq!(check_output(&page, "report", Some(MARK), true), Ok(()));
        assert!(check_output(&page, "report", None, false).is_err(), "no mark: only --force replaces");
        std::fs::write(d.join("f.h5"), b"\x89HDF\r\n\x1a\n....").unwrap();
        assert!(check_output(&d.join("f.h5"), "report", Some(MARK), true).unwrap_err().contains("HDF5"));
        assert!(check_output(d, "report", Some(MARK), true).unwrap_err().contains("folder"));
        std::fs::create_dir(d.join("run")).unwrap();
        std::fs::write(d.join("run/run.json"), "{}").unwrap();
        std::fs::write(d.join("run/weights.safetensors"), "w").unwrap();
        for name in ["run.json", "weights.safetensors"] {
            let why = check_output(&d.join("run").join(name), "report", Some(MARK), true).unwrap_err();
            assert!(why.contains("run folder"), "{why}");
        }
        assert_eq!(
            check_output(&d.join("run/report.html"), "report", Some(MARK), false),
            Ok(()),
            "a new file in a run"
        );
        // a CSV has no room for a mark: told by the attribute its writer sets (where kept)
        let csv = d.join("submission.csv");
        std::fs::write(&csv, "id,label\n").unwrap();
        assert!(check_output(&csv, "predict", None, false).is_err(), "someone else's CSV");
        write_output(&csv, b"id,label\n1,0.5\n", "predict").unwrap();
        if xattr::get(&csv, OUTPUT_ATTR).is_ok_and(|t| t.is_some()) {
            assert_eq!(check_output(&csv, "predict", None, false), Ok(()), "our own CSV");
            assert!(check_output(&csv, "report", None, false).is_err(), "another command's file");
        }
        std::os::unix::fs::symlink(d.join("run/run.json"), d.join("link.html")).unwrap();
        assert!(check_output(&d.join("link.html"), "report", Some(MARK), false).unwrap_err().contains("link"));
    }

    #[test]
    fn an_output_lock_is_held_once_and_gone_after() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("gap_X.h5");
        let lock = OutputLock::take(&target).unwrap().unwrap();
        let held = OutputLock::take(&target).unwrap().unwrap_err();
        assert_eq!(held.pid, Some(std::process::id()));
        assert!(held.to_string().contains(&format!("process {}", std::process::id())), "{held}");
        assert_eq!(OutputLock::holder(&target).map(|h| h.pid), Some(Some(std::process::id())));
        drop(lock);
        assert!(!OutputLock::path_of(&target).exists(), "no lock file left");
        assert!(OutputLock::holder(&target).is_none());
        assert!(OutputLock::take(&target).unwrap().is_ok());
    }

    #[test]
    fn marked_pictures_decode_as_before_and_carry_the_mark() {
        let t = tempfile::tempdir().unwrap();
        let img = image::RgbImage::from_fn(9, 7, |x, y| image::Rgb([x as u8 * 20, y as u8 * 30, 99]));
        for (name, format) in [("a.png", image::ImageFormat::Png), ("a.jpg", image::ImageFormat::Jpeg)] {
            let bytes = encode_marked(&img, format).unwrap();
            // (the PNG decoder checks every chunk's CRC, the mark's too)
            let back = image::load_from_memory_with_format(&bytes, format).unwrap().to_rgb8();
            assert_eq!(back.dimensions(), (9, 7), "{name}");
            if format == image::ImageFormat::Png {
                assert_eq!(back, img, "a lossless picture is unchanged");
            }
            let path = t.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(check_output(&path, "cam", Some(IMAGE_MARK), false), Ok(()), "{name}: ours");
        }
    }
}
