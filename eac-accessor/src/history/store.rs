//! A crash-safe, append-only file of published versions.
//!
//! Each record is `EACH` | payload length (u32 LE) | XXH3-64 of the payload (u64 LE) |
//! payload (JSON). A record is appended and `fsync`ed before the publish is reported.
//! On open, a torn tail or a corrupt record (bad magic, impossible length, checksum
//! mismatch) is skipped with a warning and never taken for configuration; reading
//! resynchronises on the next magic. When anything was skipped, or the file grew past
//! twice the limit, it is rewritten whole: temp file, `fsync`, rename, `fsync` of the folder.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::state_dir::{self, StateDir};

const MAGIC: &[u8; 4] = b"EACH";
const HEADER: usize = 16;
const FILE_NAME: &str = "history.eac";
const LOCK_NAME: &str = "lock";

/// One stored version: what it was, where it came from, and its whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) version: u64,
    pub(crate) hash: String,
    pub(crate) origin: serde_json::Value,
    pub(crate) published_at: f64,
    pub(crate) changed: Vec<String>,
    pub(crate) document: serde_json::Value,
    /// What the process that wrote it served (its config folder), when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) label: Option<String>,
}

/// The durable history file in a folder, and the lock that makes the folder this
/// process's alone.
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    file: File,
    count: usize,
    limit: usize,
    /// Holds an exclusive `flock` on the folder's lock file for the store's life; the
    /// kernel releases it when the process dies, so a dead holder's lock is taken over.
    _lock: File,
}

impl Store {
    /// Opens (or creates) the store in `dir`, returning it with every intact record, oldest
    /// first, and how many corrupt or torn ones were skipped.
    pub(crate) fn open(dir: &StateDir, limit: usize) -> io::Result<(Store, Vec<Record>, usize)> {
        let dir = dir.path();
        let lock = lock_dir(dir)?;
        let path = dir.join(FILE_NAME);
        let bytes = state_dir::read_private(&path)?.unwrap_or_default();
        let (mut records, skipped) = decode_all(&bytes);
        if skipped > 0 {
            tracing::warn!(path = %path.display(), skipped, "history store had torn or corrupt records; skipped them");
        }
        let keep = records.len().saturating_sub(limit);
        records.drain(..keep);
        if skipped > 0 || keep > 0 {
            rewrite(&path, &records)?;
        }
        let file = state_dir::open_private(OpenOptions::new().create(true).append(true), &path)?;
        let store = Store {
            path,
            file,
            count: records.len(),
            limit,
            _lock: lock,
        };
        Ok((store, records, skipped))
    }

    /// Replaces the whole file with `records` (after failed appends: the file may end in
    /// a torn record, and misses some).
    pub(crate) fn replace(&mut self, records: &[Record]) -> io::Result<()> {
        let start = records.len().saturating_sub(self.limit);
        rewrite(&self.path, &records[start..])?;
        self.file = state_dir::open_private(OpenOptions::new().append(true), &self.path)?;
        self.count = records.len() - start;
        Ok(())
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record and makes it durable.
    pub(crate) fn append(&mut self, record: &Record, keep: &[Record]) -> io::Result<()> {
        if self.count + 1 > self.limit * 2 {
            // Compact: the kept records, this one last, atomically replace the file.
            let mut all = keep.to_vec();
            all.push(record.clone());
            let start = all.len().saturating_sub(self.limit);
            rewrite(&self.path, &all[start..])?;
            self.file = state_dir::open_private(OpenOptions::new().append(true), &self.path)?;
            self.count = all.len() - start;
            return Ok(());
        }
        self.file.write_all(&encode(record)?)?;
        self.file.sync_data()?;
        self.count += 1;
        Ok(())
    }
}

/// Takes the folder's lock, or fails naming the folder and the holder's PID.
fn lock_dir(dir: &Path) -> io::Result<File> {
    let path = dir.join(LOCK_NAME);
    let mut file = state_dir::open_private(
        OpenOptions::new().read(true).write(true).create(true),
        &path,
    )?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = io::Read::read_to_string(&mut file, &mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another process".to_owned()
            } else {
                format!("process {holder}")
            };
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "the state dir `{}` is in use by {holder}: one process owns a state dir at a time \
                     (give this one its own)",
                    dir.display()
                ),
            ));
        }
        Err(fs::TryLockError::Error(e)) => return Err(e),
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    file.sync_data()?;
    Ok(file)
}

fn encode(record: &Record) -> io::Result<Vec<u8>> {
    let payload = serde_json::to_vec(record)?;
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record over 4 GiB"))?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&xxh3_64(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Every intact record in `bytes`, and how many places had to be skipped.
fn decode_all(bytes: &[u8]) -> (Vec<Record>, usize) {
    let (records, skipped, _) = decode_counted(bytes);
    (records, skipped)
}

/// What hashing payloads costs while a file is decoded.
struct Hashing {
    /// What hashing payloads that turn out corrupt may still cost. Without a bound, a
    /// file of headers that each claim the rest of the file is hashed again from every
    /// one of them: quadratic, hours for a few MiB. A torn or flipped record costs at
    /// most the file once; past the allowance, a record longer than what is left of it is
    /// skipped unhashed.
    allowance: usize,
    /// Bytes hashed so far, intact records' and corrupt ones'.
    hashed: usize,
}

/// [`decode_all`], and how many bytes it hashed: at most five times the file's size
/// (once for the intact records, four times for corrupt ones).
fn decode_counted(bytes: &[u8]) -> (Vec<Record>, usize, usize) {
    let mut records = Vec::new();
    let mut skipped = 0;
    let mut at = 0;
    let mut hashing = Hashing {
        allowance: bytes.len().saturating_mul(4),
        hashed: 0,
    };
    while at < bytes.len() {
        match decode_at(bytes, at, &mut hashing) {
            Some((record, next)) => {
                records.push(record);
                at = next;
            }
            None => {
                skipped += 1;
                // Resynchronise on the next magic after this position.
                match find(&bytes[at + 1..], MAGIC) {
                    Some(offset) => at = at + 1 + offset,
                    None => break,
                }
            }
        }
    }
    (records, skipped, hashing.hashed)
}

/// The record at `at` and where the next one starts; hashing a payload that does not
/// match its checksum is taken from the allowance, and one longer than what is left of
/// it is not hashed.
fn decode_at(bytes: &[u8], at: usize, hashing: &mut Hashing) -> Option<(Record, usize)> {
    let header = bytes.get(at..at + HEADER)?;
    if &header[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
    let sum = u64::from_le_bytes(header[8..16].try_into().ok()?);
    let payload = bytes.get(at + HEADER..at + HEADER + len)?;
    if len > hashing.allowance {
        return None;
    }
    hashing.hashed += len;
    if xxh3_64(payload) != sum {
        hashing.allowance -= len;
        return None;
    }
    let record: Record = serde_json::from_slice(payload).ok()?;
    in_range(&record).then_some((record, at + HEADER + len))
}

/// The latest publish time a record may carry: the end of year 9999, in Unix seconds.
const LATEST: f64 = 253_402_300_799.0;

/// A record whose checksum matches can still say what no publish wrote (a version 0, a
/// time before 1970 or past year 9999, not a number): it is skipped like a torn one, and
/// nothing later turns it into a time. (A version `u64::MAX` is kept: publishing after
/// it is an error, never an overflow or a number used twice.)
fn in_range(record: &Record) -> bool {
    record.version != 0 && (0.0..=LATEST).contains(&record.published_at)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn rewrite(path: &Path, records: &[Record]) -> io::Result<()> {
    let (tmp, mut file) = state_dir::create_temp(path)?;
    let written = (|| {
        for record in records {
            file.write_all(&encode(record)?)?;
        }
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    state_dir::sync_parent(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a state dir must be: owner-only (tempfile's follow the umask).
    fn private_dir() -> tempfile::TempDir {
        let mut builder = tempfile::Builder::new();
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        builder.tempdir().unwrap()
    }

    /// The store in `path`, checked as a state dir first.
    fn open_at(path: &Path, limit: usize) -> io::Result<(Store, Vec<Record>, usize)> {
        Store::open(&StateDir::open(path).unwrap(), limit)
    }

    fn record(version: u64) -> Record {
        Record {
            version,
            hash: format!("{version:032x}"),
            origin: serde_json::json!({"kind": "refresh"}),
            published_at: 1.0,
            changed: vec!["limits".into()],
            document: serde_json::json!({"limits": {"max": version}}),
            label: None,
        }
    }

    fn write_three(dir: &Path) -> (Vec<u8>, usize) {
        let (mut store, _, _) = open_at(dir, 10).unwrap();
        let mut kept = Vec::new();
        for v in 1..=3 {
            store.append(&record(v), &kept).unwrap();
            kept.push(record(v));
        }
        let bytes = fs::read(dir.join(FILE_NAME)).unwrap();
        let last_len = encode(&record(3)).unwrap().len();
        (bytes, last_len)
    }

    #[test]
    fn a_second_store_on_the_same_folder_is_refused_naming_the_holder() {
        let dir = private_dir();
        let first = open_at(dir.path(), 10).unwrap();
        let error = open_at(dir.path(), 10).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(
            message.contains(&format!("process {}", std::process::id())),
            "{message}"
        );
        drop(first);
        open_at(dir.path(), 10).expect("the lock is free once the holder is gone");
    }

    #[test]
    fn reopening_reads_every_record_back() {
        let dir = private_dir();
        write_three(dir.path());
        let (_, records, skipped) = open_at(dir.path(), 10).unwrap();
        assert_eq!(skipped, 0);
        assert_eq!(records, [record(1), record(2), record(3)]);
    }

    #[test]
    fn a_torn_last_record_at_every_offset_loses_only_that_record() {
        let dir = private_dir();
        let (bytes, last_len) = write_three(dir.path());
        let start = bytes.len() - last_len;
        for cut in start..bytes.len() {
            let case = private_dir();
            fs::write(case.path().join(FILE_NAME), &bytes[..cut]).unwrap();
            let (mut store, records, skipped) = open_at(case.path(), 10).unwrap();
            assert_eq!(records, [record(1), record(2)], "cut at {cut}");
            assert_eq!(skipped, usize::from(cut > start), "cut at {cut}");
            // And the store is usable afterwards: a new record follows the good ones.
            store.append(&record(4), &records).unwrap();
            drop(store);
            let (_, again, skipped) = open_at(case.path(), 10).unwrap();
            assert_eq!(again, [record(1), record(2), record(4)], "cut at {cut}");
            assert_eq!(skipped, 0);
        }
    }

    #[test]
    fn a_corrupt_byte_anywhere_in_the_last_record_is_never_taken_for_config() {
        let dir = private_dir();
        let (bytes, last_len) = write_three(dir.path());
        for at in bytes.len() - last_len..bytes.len() {
            let mut broken = bytes.clone();
            broken[at] ^= 0x20;
            let case = private_dir();
            fs::write(case.path().join(FILE_NAME), &broken).unwrap();
            let (_, records, skipped) = open_at(case.path(), 10).unwrap();
            assert_eq!(records, [record(1), record(2)], "flipped byte {at}");
            assert!(skipped >= 1, "flipped byte {at}");
        }
    }

    #[test]
    fn a_corrupt_middle_record_is_skipped_and_later_ones_survive() {
        let dir = private_dir();
        let (mut bytes, last_len) = write_three(dir.path());
        let second_start = encode(&record(1)).unwrap().len();
        bytes[second_start + HEADER + 3] ^= 0x01;
        let _ = last_len;
        fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
        let (_, records, skipped) = open_at(dir.path(), 10).unwrap();
        assert_eq!(records, [record(1), record(3)]);
        assert_eq!(skipped, 1);
    }

    #[test]
    fn a_record_out_of_range_is_skipped_like_a_torn_one() {
        let dir = private_dir();
        let mut bytes = Vec::new();
        let out_of_range = [
            Record {
                version: 0,
                ..record(1)
            },
            Record {
                published_at: -1.0,
                ..record(2)
            },
            Record {
                published_at: 1e300,
                ..record(2)
            },
            Record {
                published_at: f64::MAX,
                ..record(2)
            },
        ];
        for r in out_of_range.iter().chain([&record(3)]) {
            bytes.extend(encode(r).unwrap());
        }
        fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
        let (_, records, skipped) = open_at(dir.path(), 10).unwrap();
        assert_eq!(records, [record(3)]);
        assert_eq!(skipped, out_of_range.len());
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_lock_or_history_link_is_not_followed() {
        let dir = private_dir();
        let state = dir.path().join("state");
        crate::StateDir::open(&state).unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        for name in [LOCK_NAME, FILE_NAME] {
            let planted = state.join(name);
            std::os::unix::fs::symlink(&victim, &planted).unwrap();
            let error = open_at(&state, 10).unwrap_err();
            assert!(
                error.to_string().contains("symbolic link"),
                "{name}: {error}"
            );
            assert_eq!(fs::read_to_string(&victim).unwrap(), "precious", "{name}");
            fs::remove_file(&planted).unwrap();
        }
        open_at(&state, 10).expect("opens once the links are gone");
    }

    #[cfg(unix)]
    #[test]
    fn the_store_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = private_dir();
        let state = dir.path().join("state");
        write_three(&state);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state.join(FILE_NAME)), 0o600);
        assert_eq!(mode(&state), 0o700);
    }

    #[test]
    fn the_file_is_compacted_to_the_limit() {
        let dir = private_dir();
        let (mut store, _, _) = open_at(dir.path(), 3).unwrap();
        let mut kept: Vec<Record> = Vec::new();
        for v in 1..=20 {
            store.append(&record(v), &kept).unwrap();
            kept.push(record(v));
            let start = kept.len().saturating_sub(3);
            kept.drain(..start);
        }
        drop(store);
        let (_, records, _) = open_at(dir.path(), 3).unwrap();
        assert_eq!(records, [record(18), record(19), record(20)]);
        let size = fs::metadata(dir.path().join(FILE_NAME)).unwrap().len() as usize;
        assert!(
            size <= 3 * encode(&record(20)).unwrap().len() + 16,
            "{size}"
        );
    }

    #[test]
    fn a_file_of_headers_each_claiming_the_rest_is_read_in_linear_time() {
        // Every 16 bytes a header whose payload runs to the end of the file: resyncing
        // on each magic hashed the rest of the file again, n²/32 bytes in all (a 256 KiB
        // file took 17 s, 1 MiB minutes, the 16 MiB a document may reach hours).
        let crafted = |headers: usize| {
            let total = headers * HEADER;
            let mut bytes = Vec::with_capacity(total);
            for i in 0..headers {
                bytes.extend_from_slice(MAGIC);
                let rest = u32::try_from(total - (i + 1) * HEADER).unwrap();
                bytes.extend_from_slice(&rest.to_le_bytes());
                bytes.extend_from_slice(&0u64.to_le_bytes());
            }
            bytes
        };
        // The work, counted: 64 KiB of headers would hash 128 MiB unbounded.
        let small = crafted(4 * 1024);
        let (records, skipped, hashed) = decode_counted(&small);
        assert!(records.is_empty());
        assert!(skipped >= 1);
        assert!(
            hashed <= 5 * small.len(),
            "hashed {hashed} bytes of a {}-byte file",
            small.len()
        );
        // A real 1 MiB file in a state dir: nothing taken as a record, the crafted file
        // replaced, the store working and reopening at once.
        let dir = private_dir();
        fs::write(dir.path().join(FILE_NAME), crafted(64 * 1024)).unwrap();
        let (mut store, records, skipped) = open_at(dir.path(), 10).unwrap();
        assert!(records.is_empty());
        assert!(skipped >= 1);
        store.append(&record(1), &records).unwrap();
        drop(store);
        let (_, again, skipped) = open_at(dir.path(), 10).unwrap();
        assert_eq!((again, skipped), (vec![record(1)], 0));
    }
}
