use std::fs;
use std::path::{Path, PathBuf};

use crate::{DatasetError, Sample, natural_cmp};

/// The splits a data root may hold, in the order stages process them.
pub const SPLIT_NAMES: [&str; 3] = ["train", "validation", "test"];

const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "bmp", "ppm", "gif", "webp", "pgm"];

/// Class names in id order: id `i` is the `i`-th folder name in sorted order (the Keras rule).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassIndex {
    names: Vec<String>,
}

impl ClassIndex {
    /// Sorts and deduplicates `names`; ids follow that order.
    pub fn new(mut names: Vec<String>) -> Self {
        names.sort();
        names.dedup();
        ClassIndex { names }
    }
    /// The class names, in id order.
    pub fn names(&self) -> &[String] {
        &self.names
    }
    /// The id of class `name`, if it is one.
    pub fn id(&self, name: &str) -> Option<usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(name)).ok()
    }
    /// How many classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }
    /// Whether there are no classes (an unlabelled data root).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// A named split (`train`, `validation`, `test`) and its samples in a fixed order:
/// by class id, then by file name in natural order.
#[derive(Debug, Clone)]
pub struct Split {
    /// The split's name (`train`, `validation`, `test`).
    pub name: String,
    /// Its images, by class id, then in natural file order.
    pub samples: Vec<Sample>,
}

impl Split {
    /// Whether its images have class ids (class folders), not loose files.
    pub fn is_labelled(&self) -> bool {
        self.samples.first().is_some_and(|s| s.label.is_some())
    }
}

/// A data root with its splits and the class index they share.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The data root: the folder the photos' relative paths start from.
    pub root: PathBuf,
    /// What was opened: the data root, or the manifest that lists the photos. A later stage
    /// opens this to see the same rows.
    pub source: PathBuf,
    /// The classes every labelled split shares.
    pub classes: ClassIndex,
    /// The splits found, in the order `train`, `validation`, `test`.
    pub splits: Vec<Split>,
}

impl Dataset {
    /// Reads the split folders under `root`. Every labelled split must use the classes of the
    /// others; a split without images or a class folder without images is an error.
    pub(crate) fn open_folders(root: &Path) -> Result<Dataset, DatasetError> {
        fs::read_dir(root).map_err(DatasetError::io(root))?;
        let mut layouts = Vec::new();
        for name in SPLIT_NAMES {
            let dir = root.join(name);
            if dir.is_dir() {
                layouts.push((name, read_split(&dir)?));
            }
        }
        if layouts.is_empty() {
            return Err(DatasetError::NoSplits(root.to_path_buf()));
        }
        let classes = class_index(root, &layouts)?;
        let splits = layouts
            .into_iter()
            .map(|(name, layout)| Split { name: name.to_string(), samples: layout.into_samples(root, &classes) })
            .collect();
        Ok(Dataset { root: root.to_path_buf(), source: root.to_path_buf(), classes, splits })
    }

    /// The split named `name`, if the data root has it.
    pub fn split(&self, name: &str) -> Option<&Split> {
        self.splits.iter().find(|s| s.name == name)
    }

    /// Keeps only the splits `names` (in their usual order): what `extract --splits` and the
    /// wheel's `splits=` do. A name that is no split, or that the data lacks, is refused.
    pub fn keep_splits(&mut self, names: &[String]) -> Result<(), DatasetError> {
        for name in names {
            let reason = if !SPLIT_NAMES.contains(&name.as_str()) {
                format!("unknown split `{name}` (expected {})", SPLIT_NAMES.join(", "))
            } else if self.split(name).is_none() {
                format!("no `{name}` split")
            } else {
                continue;
            };
            return Err(DatasetError::Split { path: self.source.clone(), reason });
        }
        self.splits.retain(|s| names.contains(&s.name));
        Ok(())
    }
}

/// What a split folder holds before class ids are assigned.
enum Layout {
    Classes(Vec<(String, Vec<PathBuf>)>),
    Flat(Vec<PathBuf>),
}

impl Layout {
    fn into_samples(self, root: &Path, classes: &ClassIndex) -> Vec<Sample> {
        let sample = |path: PathBuf, label| {
            let rel = relative(root, &path);
            Sample::file(path, rel, label)
        };
        match self {
            Layout::Flat(files) => files.into_iter().map(|p| sample(p, None)).collect(),
            Layout::Classes(mut folders) => {
                folders.sort_by_key(|(class, _)| classes.id(class));
                folders
                    .into_iter()
                    .flat_map(|(class, files)| {
                        let id = classes.id(&class);
                        files.into_iter().map(move |p| sample(p, id))
                    })
                    .collect()
            }
        }
    }
}

/// Class ids come from the first labelled split; the other labelled splits may use a subset.
fn class_index(root: &Path, layouts: &[(&str, Layout)]) -> Result<ClassIndex, DatasetError> {
    let mut labelled = layouts.iter().filter_map(|(name, l)| match l {
        Layout::Classes(folders) => Some((name, folders)),
        Layout::Flat(_) => None,
    });
    let Some((_, first)) = labelled.next() else {
        return Ok(ClassIndex::default());
    };
    let classes = ClassIndex::new(first.iter().map(|(c, _)| c.clone()).collect());
    for (name, folders) in labelled {
        for (class, _) in folders {
            if classes.id(class).is_none() {
                return Err(DatasetError::UnknownClass {
                    path: root.join(name).join(class),
                    class: class.clone(),
                    known: classes.names().join(", "),
                });
            }
        }
    }
    Ok(classes)
}

fn read_split(dir: &Path) -> Result<Layout, DatasetError> {
    let (subdirs, files) = list_dir(dir)?;
    let layout = match (subdirs.is_empty(), files.is_empty()) {
        (true, true) => return Err(DatasetError::EmptySplit(dir.to_path_buf())),
        (true, false) => Layout::Flat(files),
        (false, true) => {
            let mut folders = Vec::with_capacity(subdirs.len());
            for sub in subdirs {
                let (_, files) = list_dir(&sub)?;
                if files.is_empty() {
                    return Err(DatasetError::EmptyClass(sub));
                }
                folders.push((file_name(&sub), files));
            }
            Layout::Classes(folders)
        }
        (false, false) => return Err(DatasetError::MixedLayout(dir.to_path_buf())),
    };
    Ok(layout)
}

/// The visible sub-folders and image files of `dir`, each sorted naturally by name.
fn list_dir(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), DatasetError> {
    let (mut dirs, mut files) = (Vec::new(), Vec::new());
    for entry in fs::read_dir(dir).map_err(DatasetError::io(dir))? {
        let path = entry.map_err(DatasetError::io(dir))?.path();
        if file_name(&path).starts_with('.') {
            continue;
        }
        // `is_dir` follows symlinks; a broken link or a loop is neither and is left out here
        // (the verify stage reports those).
        if path.is_dir() {
            if !is_image_file(&path) {
                dirs.push(path);
            }
        } else if is_image_file(&path) {
            files.push(path);
        }
    }
    let by_name = |a: &PathBuf, b: &PathBuf| natural_cmp(&file_name(a), &file_name(b));
    dirs.sort_by(by_name);
    files.sort_by(by_name);
    Ok((dirs, files))
}

/// Whether the file name has an image extension we decode (any case).
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `path` relative to `root` with `/` separators, the key stored in feature files.
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"x").unwrap();
    }

    #[test]
    fn class_ids_are_sorted_folder_names_and_files_sort_naturally() {
        let t = tempfile::tempdir().unwrap();
        for f in ["train/dogs/dog.10.jpg", "train/dogs/dog.2.JPG", "train/cats/cat.1.png"] {
            touch(t.path(), f);
        }
        touch(t.path(), "validation/dogs/d.jpeg");
        let ds = Dataset::open(t.path()).unwrap();
        assert_eq!(ds.classes.names(), ["cats", "dogs"]);
        let train = ds.split("train").unwrap();
        let rows: Vec<_> = train.samples.iter().map(|s| (s.rel.as_str(), s.label)).collect();
        assert_eq!(
            rows,
            [("train/cats/cat.1.png", Some(0)), ("train/dogs/dog.2.JPG", Some(1)), ("train/dogs/dog.10.jpg", Some(1)),]
        );
        assert_eq!(ds.split("validation").unwrap().samples[0].label, Some(1));
        assert!(ds.split("test").is_none());
    }

    #[test]
    fn keep_splits_keeps_the_named_ones_and_refuses_unknown_or_missing_names() {
        let t = tempfile::tempdir().unwrap();
        for f in ["train/cats/a.jpg", "validation/cats/b.jpg", "test/c.jpg"] {
            touch(t.path(), f);
        }
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut ds = Dataset::open(t.path()).unwrap();
        ds.keep_splits(&names(&["test", "train"])).unwrap();
        assert_eq!(ds.splits.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["train", "test"]);
        let e = ds.keep_splits(&names(&["holdout"])).unwrap_err().to_string();
        assert!(e.contains("unknown split `holdout` (expected train, validation, test)"), "{e}");
        let e = ds.keep_splits(&names(&["validation"])).unwrap_err().to_string();
        assert!(e.starts_with(&t.path().display().to_string()) && e.ends_with("no `validation` split"), "{e}");
        assert_eq!(ds.splits.len(), 2, "a refusal keeps every split");
    }

    #[test]
    fn numeric_class_folders_map_in_order() {
        let t = tempfile::tempdir().unwrap();
        for c in ["00010", "00002", "00000", "00001"] {
            touch(t.path(), &format!("train/{c}/a.png"));
        }
        let ds = Dataset::open(t.path()).unwrap();
        assert_eq!(ds.classes.names(), ["00000", "00001", "00002", "00010"]);
        assert_eq!(ds.classes.id("00010"), Some(3));
    }

    #[test]
    fn flat_test_split_is_unlabelled_in_natural_order() {
        let t = tempfile::tempdir().unwrap();
        touch(t.path(), "train/a/x.jpg");
        for f in ["10.jpg", "2.jpg", "1.jpg", "notes.txt", ".hidden.jpg"] {
            touch(t.path(), &format!("test/{f}"));
        }
        let ds = Dataset::open(t.path()).unwrap();
        let test = ds.split("test").unwrap();
        assert!(!test.is_labelled());
        let rels: Vec<_> = test.samples.iter().map(|s| s.rel.as_str()).collect();
        assert_eq!(rels, ["test/1.jpg", "test/2.jpg", "test/10.jpg"]);
    }

    #[test]
    fn hidden_entries_and_other_extensions_are_ignored() {
        let t = tempfile::tempdir().unwrap();
        for f in ["a/1.webp", "a/2.GIF", "a/3.bmp", "a/4.ppm", "a/readme.md", "a/.DS_Store", ".git/x.jpg"] {
            touch(t.path(), &format!("train/{f}"));
        }
        let ds = Dataset::open(t.path()).unwrap();
        assert_eq!(ds.classes.names(), ["a"]);
        assert_eq!(ds.splits[0].samples.len(), 4);
    }

    #[test]
    fn empty_class_folder_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        touch(t.path(), "train/cats/1.jpg");
        fs::create_dir_all(t.path().join("train/dogs")).unwrap();
        let err = Dataset::open(t.path()).unwrap_err();
        assert!(matches!(err, DatasetError::EmptyClass(ref p) if p.ends_with("train/dogs")), "{err}");
    }

    #[test]
    fn empty_split_and_missing_splits_are_errors() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(Dataset::open(t.path()), Err(DatasetError::NoSplits(_))));
        fs::create_dir_all(t.path().join("train")).unwrap();
        assert!(matches!(Dataset::open(t.path()), Err(DatasetError::EmptySplit(_))));
        assert!(matches!(Dataset::open(t.path().join("nope")), Err(DatasetError::Io { .. })));
    }

    #[test]
    fn validation_class_unknown_to_train_is_refused() {
        let t = tempfile::tempdir().unwrap();
        touch(t.path(), "train/cats/1.jpg");
        touch(t.path(), "validation/cows/1.jpg");
        let err = Dataset::open(t.path()).unwrap_err().to_string();
        assert!(err.contains("cows") && err.contains("cats"), "{err}");
    }

    #[test]
    fn labelled_test_split_gets_labels() {
        let t = tempfile::tempdir().unwrap();
        touch(t.path(), "train/a/1.png");
        touch(t.path(), "train/b/1.png");
        touch(t.path(), "test/b/9.png");
        let ds = Dataset::open(t.path()).unwrap();
        assert_eq!(ds.split("test").unwrap().samples[0].label, Some(1));
    }
}
