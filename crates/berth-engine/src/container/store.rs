//! The container store: every record in memory, indexed by ID and by name, loaded once at
//! start from `<root>/containers/<id>/config.json` (moby's memory store and name registrar).
//!
//! - Lookups (full ID, name with or without `/`, unique ID prefix) read no file.
//! - Names are *reserved*: a create or rename claims its name in one step under the index
//!   lock before anything is written, so of two requests for one name exactly one wins.
//! - Every change of a record goes through [`ContainerStore::update`]: under that record's own
//!   write lock the current record is changed and written atomically, then replaces the one in
//!   memory. Rename, update and network connect racing on one container therefore each see
//!   the others' changes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::record::Record;
use crate::error::{EngineError, Result};

/// The file a record lives in, inside its container's directory.
pub const RECORD_FILE: &str = "config.json";

#[derive(Debug, Default)]
struct Index {
    /// Ordered, so a prefix lookup is a range scan.
    by_id: BTreeMap<String, Arc<Record>>,
    /// Name → ID, for stored records and for names reserved by a create or rename under way.
    names: HashMap<String, String>,
}

#[derive(Debug)]
pub struct ContainerStore {
    dir: PathBuf,
    index: RwLock<Index>,
    /// One lock per record, held across a read-modify-write of it.
    writers: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl ContainerStore {
    /// Loads every record under `dir` (`<root>/containers`). Directories being removed
    /// (`.removing-*`) and records that cannot be read are left out (and said so in the log).
    pub fn open(dir: &Path) -> std::io::Result<ContainerStore> {
        std::fs::create_dir_all(dir)?;
        let mut index = Index::default();
        for entry in std::fs::read_dir(dir)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path().join(RECORD_FILE);
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let rec = match serde_json::from_slice::<Record>(&bytes) {
                Ok(rec) => rec,
                Err(e) => match serde_json::from_slice::<super::legacy::LegacyRecord>(&bytes) {
                    // An earlier berth's record: upgraded, and written back as today's.
                    Ok(old) => {
                        let rec = old.upgrade();
                        if let Err(e) = write_record(&entry.path(), &rec) {
                            eprintln!("berth: upgrade {}: {e}", path.display());
                        }
                        rec
                    }
                    Err(_) => {
                        eprintln!("berth: container record {} unreadable: {e}", path.display());
                        continue;
                    }
                },
            };
            index.names.insert(rec.name.clone(), rec.id.clone());
            index.by_id.insert(rec.id.clone(), Arc::new(rec));
        }
        Ok(ContainerStore {
            dir: dir.to_path_buf(),
            index: RwLock::new(index),
            writers: Mutex::default(),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The directory of container `id`.
    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Finds a container by full ID, name (with or without the leading `/`), or unique ID
    /// prefix, with Docker's errors.
    pub fn get(&self, key: &str) -> Result<Arc<Record>> {
        let key = key.strip_prefix('/').unwrap_or(key);
        let index = self.read();
        if let Some(r) = index.by_id.get(key) {
            return Ok(r.clone());
        }
        if let Some(r) = index.names.get(key).and_then(|id| index.by_id.get(id)) {
            return Ok(r.clone());
        }
        if key.is_empty() {
            return Err(EngineError::not_found(format!("No such container: {key}")));
        }
        let mut hits = index
            .by_id
            .range(key.to_owned()..)
            .take_while(|(id, _)| id.starts_with(key));
        match (hits.next(), hits.next()) {
            (Some((_, r)), None) => Ok(r.clone()),
            (None, _) => Err(EngineError::not_found(format!("No such container: {key}"))),
            (Some(_), Some(_)) => Err(EngineError::not_found(format!(
                "Multiple IDs found with provided prefix: {key}"
            ))),
        }
    }

    /// Whether a record with this full ID exists.
    pub fn contains(&self, id: &str) -> bool {
        self.read().by_id.contains_key(id)
    }

    /// Every record, in no particular order.
    pub fn all(&self) -> Vec<Arc<Record>> {
        self.read().by_id.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ID holding `name` (stored or reserved).
    pub fn holder_of(&self, name: &str) -> Option<String> {
        self.read().names.get(name).cloned()
    }

    /// Claims `name` for container `id`, or Docker's conflict naming the holder.
    pub fn reserve_name(&self, name: &str, id: &str) -> Result<()> {
        let mut index = self.write();
        match index.names.get(name) {
            Some(holder) if holder != id => Err(EngineError::conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
            ))),
            _ => {
                index.names.insert(name.to_owned(), id.to_owned());
                Ok(())
            }
        }
    }

    /// Gives back `name` if `id` holds it (a create that failed, a rename's old name).
    pub fn release_name(&self, name: &str, id: &str) {
        let mut index = self.write();
        if index.names.get(name).is_some_and(|h| h == id) {
            index.names.remove(name);
        }
    }

    /// Stores a new record; its name must be reserved for it.
    pub fn insert(&self, rec: Record) -> Result<Arc<Record>> {
        let dir = self.dir_of(&rec.id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| EngineError::io(format!("create {}", dir.display()), e))?;
        write_record(&dir, &rec)?;
        let rec = Arc::new(rec);
        let mut index = self.write();
        index.names.insert(rec.name.clone(), rec.id.clone());
        index.by_id.insert(rec.id.clone(), rec.clone());
        Ok(rec)
    }

    fn writer(&self, id: &str) -> Arc<Mutex<()>> {
        let mut w = self.writers.lock().unwrap_or_else(|p| p.into_inner());
        w.entry(id.to_owned()).or_default().clone()
    }

    /// Changes record `id` with `change` and stores the result atomically, under the record's
    /// write lock. A changed name must have been reserved; the old one is released. When
    /// `change` fails nothing is written.
    pub fn update<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Record) -> Result<T>,
    ) -> Result<(Arc<Record>, T)> {
        let lock = self.writer(id);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let current = self
            .read()
            .by_id
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::not_found(format!("No such container: {id}")))?;
        let mut rec = (*current).clone();
        let out = change(&mut rec)?;
        if rec.id != current.id {
            return Err(EngineError::internal("a record's ID cannot change"));
        }
        write_record(&self.dir_of(id), &rec)?;
        let rec = Arc::new(rec);
        let mut index = self.write();
        if rec.name != current.name {
            index.names.insert(rec.name.clone(), rec.id.clone());
            if index.names.get(&current.name).is_some_and(|h| h == id) {
                index.names.remove(&current.name);
            }
        }
        index.by_id.insert(id.to_owned(), rec.clone());
        Ok((rec, out))
    }

    /// Forgets record `id` and frees its name (its files are the caller's to remove).
    pub fn remove(&self, id: &str) {
        let mut index = self.write();
        if let Some(rec) = index.by_id.remove(id) {
            if index.names.get(&rec.name).is_some_and(|h| h == id) {
                index.names.remove(&rec.name);
            }
        }
        drop(index);
        self.writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

fn write_record(dir: &Path, rec: &Record) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(rec)
        .map_err(|e| EngineError::internal(format!("encode the record of {}: {e}", rec.id)))?;
    berth_core::fs::write_atomic(&dir.join(RECORD_FILE), &bytes)
        .map_err(|e| EngineError::io(format!("write the record of {}", rec.id), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::record::RestartPolicy;

    fn record(id: &str, name: &str) -> Record {
        Record {
            id: id.to_owned(),
            name: name.to_owned(),
            created: String::new(),
            image: "busybox".into(),
            image_id: String::new(),
            path: "sh".into(),
            args: vec![],
            config: Default::default(),
            host_config: Default::default(),
            networking_config: None,
            restart: RestartPolicy::No,
            log: Default::default(),
            mounts: vec![],
            healthcheck: None,
            net: Default::default(),
            links: Vec::new(),
        }
    }

    #[test]
    fn finds_by_id_name_and_unique_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContainerStore::open(tmp.path()).unwrap();
        for (id, name) in [("abc123", "web"), ("abd456", "db")] {
            store.reserve_name(name, id).unwrap();
            store.insert(record(id, name)).unwrap();
        }
        assert_eq!(store.get("web").unwrap().id, "abc123");
        assert_eq!(store.get("/db").unwrap().id, "abd456");
        assert_eq!(store.get("abc").unwrap().id, "abc123");
        let e = store.get("ab").unwrap_err().to_string();
        assert_eq!(e, "Multiple IDs found with provided prefix: ab");
        assert_eq!(
            store.get("zzz").unwrap_err().to_string(),
            "No such container: zzz"
        );
        // What was stored is what a new store loads.
        let again = ContainerStore::open(tmp.path()).unwrap();
        assert_eq!(again.get("db").unwrap().id, "abd456");
        assert_eq!(again.len(), 2);
    }

    #[test]
    fn a_name_is_held_by_one_container_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(ContainerStore::open(tmp.path()).unwrap());
        let winners: Vec<bool> = (0..16)
            .map(|n| {
                let store = store.clone();
                std::thread::spawn(move || store.reserve_name("one", &format!("id{n}")).is_ok())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(winners.iter().filter(|w| **w).count(), 1);
        let holder = store.holder_of("one").unwrap();
        store.release_name("one", "someone-else");
        assert_eq!(store.holder_of("one"), Some(holder.clone()));
        store.release_name("one", &holder);
        assert!(store.holder_of("one").is_none());
    }

    #[test]
    fn updates_serialize_and_a_rename_moves_the_name() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Arc::new(ContainerStore::open(tmp.path()).unwrap());
        store.reserve_name("a", "id1").unwrap();
        store.insert(record("id1", "a")).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|n| {
                let store = store.clone();
                std::thread::spawn(move || {
                    store
                        .update("id1", |r| {
                            r.args.push(n.to_string());
                            Ok(())
                        })
                        .unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.get("id1").unwrap().args.len(), 8);
        store.reserve_name("b", "id1").unwrap();
        store
            .update("id1", |r| {
                r.name = "b".into();
                Ok(())
            })
            .unwrap();
        assert!(store.holder_of("a").is_none());
        assert_eq!(store.get("b").unwrap().args.len(), 8);
        let again = ContainerStore::open(tmp.path()).unwrap();
        assert_eq!(again.get("b").unwrap().args.len(), 8);
        // A failed change writes nothing.
        let e = store.update("id1", |r| {
            r.args.clear();
            Err::<(), _>(EngineError::invalid("no"))
        });
        assert!(e.is_err());
        assert_eq!(store.get("b").unwrap().args.len(), 8);
    }
}
