//! The data directory is readable by the service user alone: it holds the
//! embedded database (plaintext personnel data), the master key, the
//! initial admin token and the upload spool. Directories are made 0700 and
//! files 0600 by setting the mode where each is created, not by relying on
//! the process umask (which safe Rust cannot set); an existing directory
//! that is more open is tightened at start, and that is logged. The SQLite
//! store creates its own file the same way (`muster-store-sqlite`). See
//! docs/security.md.
use crate::base::config::Config;
use anyhow::Context;
use std::fs::File;
use std::io;
use std::path::Path;

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Creates `dir` and any missing parents with mode 0700 (the parents a
/// recursive create makes, too); an existing directory is left as it is
/// (see [`tighten`]).
pub fn create_private_dirs(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(DIR_MODE);
    }
    b.create(dir)
}

/// Creates (or truncates) a file readable and writable by its owner only.
pub fn create_private_file(path: impl AsRef<Path>) -> io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE);
    }
    opts.open(path)
}

/// Creates the data directory and the uploads directory (0700), and
/// tightens what an earlier release or another tool left more open.
pub fn prepare(config: &Config) -> anyhow::Result<()> {
    create_private_dirs(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    create_private_dirs(&config.uploads_dir()).with_context(|| {
        format!(
            "cannot create the uploads directory {}",
            config.uploads_dir().display()
        )
    })?;
    let tightened = tighten(&config.data_dir).with_context(|| {
        format!(
            "cannot restrict the permissions of the data directory {}",
            config.data_dir.display()
        )
    })?;
    if tightened > 0 {
        tracing::warn!(
            path = %config.data_dir.display(),
            entries = tightened,
            "the data directory was readable by other users: its directories are now 0700 and its files 0600"
        );
    }
    Ok(())
}

/// Walks `root` (not following symbolic links) and takes the group's and
/// others' permissions away from every directory (0700) and file (0600)
/// that has any. Returns how many it changed.
#[cfg(unix)]
pub fn tighten(root: &Path) -> io::Result<u64> {
    use std::os::unix::fs::PermissionsExt;
    let mut changed = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Removed meanwhile (a sweep, another instance): nothing to do.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mode = meta.permissions().mode() & 0o777;
        let want = if meta.is_dir() {
            DIR_MODE
        } else if meta.is_file() {
            FILE_MODE
        } else {
            continue;
        };
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want))?;
            changed += 1;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(changed)
}

#[cfg(not(unix))]
pub fn tighten(_root: &Path) -> io::Result<u64> {
    Ok(0)
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_open_tree_is_tightened_and_a_private_one_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("data");
        std::fs::create_dir_all(root.join("uploads/x.index")).unwrap();
        std::fs::write(root.join("muster.db"), b"x").unwrap();
        std::fs::write(root.join("uploads/x.index/k0"), b"x").unwrap();
        for (p, m) in [
            ("", 0o755),
            ("uploads", 0o775),
            ("uploads/x.index", 0o755),
            ("muster.db", 0o644),
            ("uploads/x.index/k0", 0o666),
        ] {
            std::fs::set_permissions(root.join(p), std::fs::Permissions::from_mode(m)).unwrap();
        }
        assert_eq!(tighten(&root).unwrap(), 5);
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("uploads/x.index")), 0o700);
        assert_eq!(mode(&root.join("muster.db")), 0o600);
        assert_eq!(mode(&root.join("uploads/x.index/k0")), 0o600);
        assert_eq!(tighten(&root).unwrap(), 0);
    }

    #[test]
    fn private_files_and_directories_are_made_so_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("a/b");
        create_private_dirs(&d).unwrap();
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        assert_eq!(mode(&d), 0o700);
        create_private_file(d.join("f")).unwrap();
        assert_eq!(mode(&d.join("f")), 0o600);
    }
}

/// Where an upload waits, sealed, until its import ends.
pub(crate) fn upload_path(config: &Config, id: &str) -> std::path::PathBuf {
    config.uploads_dir().join(format!("{id}.sealed"))
}

/// Writes a file readable by its owner only.
pub(crate) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}
